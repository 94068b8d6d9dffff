/// The sizes of a 2-D convolution over NCHW float32 tensors (a 1-D convolution is one with
/// height 1). Values are trusted: the operator validates them with checked arithmetic first.
public struct Conv2DGeometry: Sendable, Hashable {
    /// Images in the batch (N).
    public var batch: Int
    /// Input channels (C), all groups together.
    public var inputChannels: Int
    /// Input height.
    public var inputHeight: Int
    /// Input width.
    public var inputWidth: Int
    /// Output channels (M), all groups together.
    public var outputChannels: Int
    /// Channel groups; both channel counts are multiples of it.
    public var groups: Int
    /// Kernel height.
    public var kernelHeight: Int
    /// Kernel width.
    public var kernelWidth: Int
    /// Vertical stride.
    public var strideHeight: Int
    /// Horizontal stride.
    public var strideWidth: Int
    /// Vertical dilation.
    public var dilationHeight: Int
    /// Horizontal dilation.
    public var dilationWidth: Int
    /// Zero rows added above the input.
    public var padTop: Int
    /// Zero columns added left of the input.
    public var padLeft: Int
    /// Zero rows added below the input.
    public var padBottom: Int
    /// Zero columns added right of the input.
    public var padRight: Int

    public init(
        batch: Int, inputChannels: Int, inputHeight: Int, inputWidth: Int, outputChannels: Int, groups: Int = 1,
        kernelHeight: Int, kernelWidth: Int, strideHeight: Int = 1, strideWidth: Int = 1, dilationHeight: Int = 1,
        dilationWidth: Int = 1, padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0
    ) {
        self.batch = batch
        self.inputChannels = inputChannels
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.outputChannels = outputChannels
        self.groups = groups
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.dilationHeight = dilationHeight
        self.dilationWidth = dilationWidth
        self.padTop = padTop
        self.padLeft = padLeft
        self.padBottom = padBottom
        self.padRight = padRight
    }

    /// `floor((input + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1`, or `nil`
    /// when the arithmetic overflows or the (dilated) kernel does not fit the padded input.
    public static func outputSize(input: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int)
        -> Int?
    {
        guard input >= 0, kernel >= 1, stride >= 1, dilation >= 1, padBegin >= 0, padEnd >= 0 else { return nil }
        let (span, o1) = (kernel - 1).multipliedReportingOverflow(by: dilation)
        let (padded, o2) = input.addingReportingOverflow(padBegin)
        let (padded2, o3) = padded.addingReportingOverflow(padEnd)
        guard !o1, !o2, !o3 else { return nil }
        let room = padded2 - span - 1
        guard room >= 0 else { return nil }
        return room / stride + 1
    }

    /// Output height.
    public var outputHeight: Int {
        (inputHeight + padTop + padBottom - dilationHeight * (kernelHeight - 1) - 1) / strideHeight + 1
    }

    /// Output width.
    public var outputWidth: Int {
        (inputWidth + padLeft + padRight - dilationWidth * (kernelWidth - 1) - 1) / strideWidth + 1
    }

    /// Input channels per group.
    public var inputChannelsPerGroup: Int { inputChannels / groups }
    /// Output channels per group.
    public var outputChannelsPerGroup: Int { outputChannels / groups }
    /// The reduction length of one output value: input channels per group × kernel area.
    public var reductionLength: Int { inputChannelsPerGroup * kernelHeight * kernelWidth }

    /// Whether the convolution is a plain matrix product over the input (1×1 kernel, stride 1, no padding).
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideHeight == 1 && strideWidth == 1 && padTop == 0
            && padLeft == 0 && padBottom == 0 && padRight == 0
    }

    /// Whether every channel is convolved on its own (groups == C_in == C_out).
    public var isDepthwise: Bool { groups == inputChannels && groups == outputChannels && groups > 1 }
}
