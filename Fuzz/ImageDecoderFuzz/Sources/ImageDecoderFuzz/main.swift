// libFuzzer entry points for image decoding. Built with `-sanitize=fuzzer,address
// -parse-as-library` (libFuzzer supplies the driver); see scripts/fuzz-image.sh.
//
// Every input goes to `ImageDecoder.decode(data:options:)` (JPEG via libjpeg, PNG via libpng, both
// in Sources/CApusCodecs) with the pixel limit lowered to 4,000,000 so that one execution stays
// within libFuzzer's memory limits; an image that decodes is then run through torchvision's
// classification preprocessing (resize → center crop → normalize; 32 → 24 rather than 256 → 224,
// which runs the same code ~60× faster in a debug ASan build), with the interpolation chosen by
// the input's length so that every resampling filter is exercised. Any thrown error is
// a pass: only a trap, an ASan report, a leak, a hang or an allocation above libFuzzer's limits fails.
import ApusPreprocess
import CFuzzerDriver
import Foundation

/// `APUS_FUZZ_EXPLAIN=1`: print what happened to each input (run the binary on single files).
let explain = ProcessInfo.processInfo.environment["APUS_FUZZ_EXPLAIN"] != nil

/// Decoder settings: Pillow's defaults except a pixel limit of 4 MP (12 MB of RGB).
let decodeOptions: DecodeOptions = {
    var options = DecodeOptions()
    options.maxPixels = 4_000_000
    return options
}()

/// Output side of the preprocessing.
let cropSize = 24
let pipelines = Interpolation.allCases.map {
    PreprocessSpec.imageClassification(cropSize: cropSize, resizeSize: 32, interpolation: $0)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let data = count > 0 && start != nil ? Data(bytes: start.unsafelyUnwrapped, count: count) : Data()
    let image: Image
    do {
        image = try ImageDecoder.decode(data: data, options: decodeOptions)
    } catch {
        let description = error.description  // error descriptions must not trap either
        if explain { printError("refused: \(description)\n") }
        return 0
    }
    let pipeline = pipelines[count % pipelines.count]
    do {
        let tensor = try pipeline.apply(to: image)
        guard tensor.shape.dimensions == [1, 3, cropSize, cropSize], tensor.dtype == .float32 else {
            printError(
                "preprocessing returned \(tensor.dtype) \(tensor.shape.dimensions), not float32 [1, 3, \(cropSize), \(cropSize)]\n"
            )
            abort()
        }
        if explain { printError("decoded \(image.width)x\(image.height), preprocessed\n") }
    } catch {
        let description = error.description
        if explain { printError("decoded \(image.width)x\(image.height); preprocessing refused: \(description)\n") }
    }
    return 0
}

/// The process entry point. SwiftPM links an executable target's entry point under this name as
/// `main` (which keeps libFuzzer's own `main` out), so it starts libFuzzer's driver itself.
@_cdecl("ImageDecoderFuzz_main")
public func entryPoint(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in
        fuzz(UnsafeRawPointer(data), size)
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}
