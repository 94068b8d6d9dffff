import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads ONNX external tensor data from files beside the model, by canonical containment.
///
/// A `location` is accepted only if it is relative, names a regular file (not a symlink) with a
/// single hard link, and resolves — after `..` and every symlink in its folders are resolved — to a
/// path inside the resolved model folder. String checks alone are not enough: the ONNX library's
/// own `../` check was bypassed three times (CVE-2022-25882, CVE-2024-27318, CVE-2026-34446).
/// The file is opened once per location per model read and checked again through its descriptor.
final class ExternalDataReader {
    private let baseDirectory: String
    private var resolvedBase: String?
    private var openFiles: [String: OpenFile] = [:]

    private struct OpenFile {
        var descriptor: Int32
        var size: Int
    }

    init(baseDirectory: URL) {
        self.baseDirectory = baseDirectory.path
    }

    deinit {
        for file in openFiles.values { close(file.descriptor) }
    }

    /// Where a tensor's external bytes are, checked against the file; see ``slice(byteCount:tensor:entries:)``.
    struct Slice {
        var descriptor: Int32
        var offset: Int
        var byteCount: Int
        var tensor: String
        var location: String
    }

    /// Resolves and checks the `external_data` entries of `tensor` (location, containment, offset
    /// + `byteCount` inside the file) without reading, so the caller can validate before allocating.
    func slice(byteCount: Int, tensor: String, entries: [(key: String, value: String)]) throws(ONNXError) -> Slice {
        var location: String?
        var offset = 0
        var length: Int?
        for (key, value) in entries {
            switch key {
            case "location": location = value
            case "offset", "length":
                guard let number = Int(value), number >= 0 else {
                    throw .externalData(
                        tensor: tensor, location: location ?? "",
                        reason: "\(key) '\(value)' is not a non-negative integer")
                }
                if key == "offset" { offset = number } else { length = number }
            default: break  // checksum and unknown keys carry nothing Apus needs
            }
        }
        guard let location, !location.isEmpty else {
            throw .externalData(tensor: tensor, location: "", reason: "no location")
        }
        func failure(_ reason: String) -> ONNXError {
            .externalData(tensor: tensor, location: location, reason: reason)
        }

        if let length, length != byteCount {
            throw failure("length \(length) does not match the \(byteCount) bytes the tensor needs")
        }
        let file = try openFile(location, failure: failure)
        let (end, overflow) = offset.addingReportingOverflow(byteCount)
        guard !overflow, end <= file.size else {
            throw failure("offset \(offset) + length \(byteCount) runs past the end of the \(file.size)-byte file")
        }
        return Slice(
            descriptor: file.descriptor, offset: offset, byteCount: byteCount, tensor: tensor, location: location)
    }

    /// Reads the bytes of a checked `slice` into `destination` (at least `slice.byteCount` bytes).
    func read(_ slice: Slice, into destination: UnsafeMutableRawPointer) throws(ONNXError) {
        func failure(_ reason: String) -> ONNXError {
            .externalData(tensor: slice.tensor, location: slice.location, reason: reason)
        }
        let byteCount = slice.byteCount
        let offset = slice.offset
        var done = 0
        while done < byteCount {
            let result = pread(slice.descriptor, destination + done, byteCount - done, off_t(offset + done))
            if result < 0 {
                if errno == EINTR { continue }
                throw failure("read failed: \(String(cString: strerror(errno)))")
            }
            guard result > 0 else { throw failure("file ended after \(offset + done) bytes while reading") }
            done += result
        }
    }

    private func openFile(_ location: String, failure: (String) -> ONNXError) throws(ONNXError) -> OpenFile {
        if let file = openFiles[location] { return file }
        guard !location.hasPrefix("/") else { throw failure("absolute paths are not allowed") }
        guard !location.utf8.contains(0) else { throw failure("the path contains a NUL byte") }

        let base: String
        if let resolvedBase {
            base = resolvedBase
        } else {
            guard let resolved = Self.realPath(baseDirectory) else {
                throw failure("cannot resolve the model folder \(baseDirectory): \(String(cString: strerror(errno)))")
            }
            resolvedBase = resolved
            base = resolved
        }
        let candidate = baseDirectory + "/" + location
        var linkStatus = stat()
        guard lstat(candidate, &linkStatus) == 0 else {
            throw failure("cannot find \(candidate): \(String(cString: strerror(errno)))")
        }
        guard linkStatus.st_mode & S_IFMT != S_IFLNK else { throw failure("the file is a symbolic link") }
        guard let resolved = Self.realPath(candidate) else {
            throw failure("cannot resolve \(candidate): \(String(cString: strerror(errno)))")
        }
        let prefix = base.hasSuffix("/") ? base : base + "/"
        guard resolved.hasPrefix(prefix), resolved.count > prefix.count else {
            throw failure("resolves to \(resolved), outside the model folder \(base)")
        }

        let descriptor = open(resolved, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("cannot open \(resolved): \(String(cString: strerror(errno)))") }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            close(descriptor)
            throw failure("cannot inspect \(resolved): \(String(cString: strerror(errno)))")
        }
        // The descriptor, not the path, is what gets read: check it is the file inspected above.
        guard status.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw failure("not a regular file")
        }
        guard status.st_nlink == 1 else {
            close(descriptor)
            throw failure("the file has \(status.st_nlink) hard links; only files with one are read")
        }
        guard status.st_dev == linkStatus.st_dev, status.st_ino == linkStatus.st_ino else {
            close(descriptor)
            throw failure("the file changed while it was being opened")
        }
        let file = OpenFile(descriptor: descriptor, size: Int(status.st_size))
        openFiles[location] = file
        return file
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// Reads a whole regular file into a buffer after checking its size against a limit.
enum FileBytes {
    static func read<Result>(
        path: String, limit: Int, _ body: (UnsafeRawBufferPointer) throws(ONNXError) -> Result
    ) throws(ONNXError) -> Result {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .io(path: path, reason: String(cString: strerror(errno))) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .io(path: path, reason: "not a regular file") }
        let size = Int(status.st_size)
        guard size <= limit else { throw .fileTooLarge(path: path, bytes: size, limit: limit) }
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(size, 1), alignment: 64)
        defer { memory.deallocate() }
        guard let base = memory.baseAddress else { throw .io(path: path, reason: "cannot allocate \(size) bytes") }
        var done = 0
        while done < size {
            let result = pread(descriptor, base + done, size - done, off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, reason: String(cString: strerror(errno)))
            }
            guard result > 0 else { throw .io(path: path, reason: "file shrank to \(done) bytes while reading") }
            done += result
        }
        return try body(UnsafeRawBufferPointer(rebasing: memory[0..<size]))
    }
}
