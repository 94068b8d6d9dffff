// libFuzzer's public driver entry point (compiler-rt FuzzerInterface.h). SwiftPM links an
// executable target's entry point as `main`, which replaces libFuzzer's own `main`, so the Swift
// entry point calls the driver itself.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
