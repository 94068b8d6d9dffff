#include "apus_codecs.h"
