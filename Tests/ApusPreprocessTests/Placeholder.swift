import Testing
@testable import ApusPreprocess

@Test func ApusPreprocessBuilds() {}
