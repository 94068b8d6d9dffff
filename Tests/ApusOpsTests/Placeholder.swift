import Testing
@testable import ApusOps

@Test func ApusOpsBuilds() {}
