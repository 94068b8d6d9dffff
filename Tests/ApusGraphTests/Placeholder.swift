import Testing
@testable import ApusGraph

@Test func ApusGraphBuilds() {}
