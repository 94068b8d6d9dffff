/// Structural checks of a graph and its topological order.
public enum Topology {
    /// Checks that every value has exactly one producer, that every node input is produced, that
    /// the declared outputs are produced and that the nodes form no cycle; returns the node
    /// indices in a topological order (stable: file order where dependencies allow).
    ///
    /// - Throws: ``GraphError`` naming the value or nodes at fault.
    public static func sortedNodeIndices(of graph: Graph) throws(GraphError) -> [Int] {
        var producer: [String: Int] = [:]  // value name → node index; -1 for inputs/initializers
        var producerNames: [String: [String]] = [:]
        func define(_ value: String, by index: Int, named name: String) {
            producerNames[value, default: []].append(name)
            if producer[value] == nil { producer[value] = index }
        }
        for input in graph.inputs { define(input.name, by: -1, named: "input '\(input.name)'") }
        for name in graph.initializers.keys where producer[name] == nil {
            define(name, by: -1, named: "initializer '\(name)'")
        }
        for (index, node) in graph.nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { define(output, by: index, named: "node '\(node.name)'") }
        }
        if let (value, names) = producerNames.first(where: { $0.value.count > 1 }) {
            throw .duplicateProducer(value, producers: names)
        }
        for output in graph.outputs where producer[output.name] == nil {
            throw .outputNotProduced(output.name)
        }
        // Kahn's algorithm; a min-heap would keep file order exactly, a FIFO queue keeps it close.
        var pendingInputs = [Int](repeating: 0, count: graph.nodes.count)
        var consumers = [[Int]](repeating: [], count: graph.nodes.count)
        for (index, node) in graph.nodes.enumerated() {
            var seen = Set<Int>()
            for input in node.inputs where !input.isEmpty {
                guard let source = producer[input] else { throw .undefinedValue(input, node: node.name) }
                if source >= 0, seen.insert(source).inserted {
                    pendingInputs[index] += 1
                    consumers[source].append(index)
                }
            }
        }
        var ready = (0..<graph.nodes.count).filter { pendingInputs[$0] == 0 }
        var order: [Int] = []
        order.reserveCapacity(graph.nodes.count)
        var head = 0
        while head < ready.count {
            let index = ready[head]
            head += 1
            order.append(index)
            for consumer in consumers[index] {
                pendingInputs[consumer] -= 1
                if pendingInputs[consumer] == 0 { ready.append(consumer) }
            }
        }
        guard order.count == graph.nodes.count else {
            let stuck = (0..<graph.nodes.count).filter { pendingInputs[$0] > 0 }.map { graph.nodes[$0].name }
            throw .cycle(nodes: stuck)
        }
        return order
    }

    /// The graph with its nodes in topological order.
    public static func sorted(_ graph: Graph) throws(GraphError) -> Graph {
        let order = try sortedNodeIndices(of: graph)
        var result = graph
        result.nodes = order.map { graph.nodes[$0] }
        return result
    }

    /// Builds the operator of every node, collecting all unsupported operator types at once.
    ///
    /// - Throws: ``GraphError/unsupportedOperators(_:)`` listing every missing type with its
    ///   nodes, or ``GraphError/node(name:opType:_:)`` for a node whose attributes are invalid.
    public static func buildOperators(for graph: Graph) throws(GraphError) -> [any Operator] {
        var unsupported: [String: [String]] = [:]
        var operators: [any Operator] = []
        operators.reserveCapacity(graph.nodes.count)
        for node in graph.nodes {
            let domain = node.domain == "ai.onnx" ? "" : node.domain
            guard let factory = OperatorRegistry.factory(opType: node.opType, domain: domain) else {
                let key = domain.isEmpty ? node.opType : "\(domain).\(node.opType)"
                unsupported[key, default: []].append(node.name)
                continue
            }
            let opset = graph.opsetImports[domain] ?? (domain.isEmpty ? graph.opsetVersion : 1)
            do {
                operators.append(try factory(node, opset))
            } catch {
                throw .node(name: node.name, opType: node.opType, error)
            }
        }
        if !unsupported.isEmpty { throw .unsupportedOperators(unsupported) }
        return operators
    }
}
