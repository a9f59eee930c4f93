import CommandSupport
import ImageBuilder

AquariumMain.run(ImageCommand.self)
