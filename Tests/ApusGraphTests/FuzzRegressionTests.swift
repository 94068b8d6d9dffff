import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// Inputs found by the libFuzzer targets in Fuzz/ (see Docs/fuzzing.md), minimized, kept as
/// literals so that each fixed crash stays fixed without the fuzzer.
@Suite struct ONNXFuzzRegressionTests {
    /// ONNXReaderFuzz, oom: a TensorProto of 8 bytes declaring dims [1_868_545_021] float32 and no
    /// data. The reader allocated the 7.5 GB tensor before noticing the data was missing.
    @Test func tensorDeclaringGigabytesWithoutDataIsRefusedBeforeAllocating() {
        let bytes: [UInt8] = [0x08, 0xFD, 0xF7, 0xFE, 0xFA, 0x06, 0x10, 0x01]
        #expect(
            throws: ONNXError.dataLengthMismatch(tensor: "", field: "data elements", expected: 1_868_545_021, actual: 0)
        ) {
            try ONNXReader.readTensor(data: Data(bytes))
        }
    }

    /// The same shape of input at exactly `maxTensorBytes` (64 GiB, more than this machine can
    /// allocate): a reader that allocates first reports an allocation failure instead of the
    /// missing data, so this fails if the check is moved after the allocation again.
    @Test func tensorAtTheSizeLimitWithoutDataReportsTheMissingData() {
        let bytes: [UInt8] = [0x08, 0x80, 0x80, 0x80, 0x80, 0x40, 0x10, 0x01]  // dims [1 << 34], float32
        #expect(throws: ONNXError.dataLengthMismatch(tensor: "", field: "data elements", expected: 1 << 34, actual: 0))
        {
            try ONNXReader.readTensor(data: Data(bytes))
        }
    }

    /// raw_data shorter than the declared shape, with a huge declared shape: refused by length.
    @Test func shortRawDataForAHugeShapeIsRefusedByLength() {
        // dims [1 << 34], data_type float32, raw_data (field 9) of 4 bytes.
        let bytes: [UInt8] = [0x08, 0x80, 0x80, 0x80, 0x80, 0x40, 0x10, 0x01, 0x4A, 0x04, 0, 0, 0x80, 0x3F]
        #expect(throws: ONNXError.dataLengthMismatch(tensor: "", field: "raw_data bytes", expected: 1 << 36, actual: 4))
        {
            try ONNXReader.readTensor(data: Data(bytes))
        }
    }
}
