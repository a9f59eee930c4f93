import CommandSupport
import FirstBoot

AquariumMain.run(FirstBootCommand.self)
