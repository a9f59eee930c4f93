#pragma once
#include <parted/parted.h>
