import Testing
@testable import ApusTensor

@Test func ApusTensorBuilds() {}
