// Intentionally empty: SwiftPM needs a source file for the header-only module.
#include "fuzzer_driver.h"
