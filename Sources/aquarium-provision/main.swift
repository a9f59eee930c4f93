import CommandSupport
import Provisioner

AquariumMain.run(ProvisionCommand.self)
