// The image formats (bmap, compressed inputs) and their error live in ImageFormat, which the Provisioner shares to
// check update images; everything that imports ImageBuilder sees them as before.
@_exported import ImageFormat
