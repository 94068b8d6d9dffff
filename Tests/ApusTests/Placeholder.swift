import Testing
@testable import Apus

@Test func ApusBuilds() {}
