#ifndef APUS_CPNG_SHIM_H
#define APUS_CPNG_SHIM_H
#include <png.h>
#endif
