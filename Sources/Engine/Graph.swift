public import Tensors

/// An attribute value of a node.
public indirect enum AttributeValue: Sendable {
    case int(Int)
    case float(Float)
    case string(String)
    case tensor(Tensor)
    case graph(Graph)
    /// A type (ONNX's TYPE_PROTO attribute, as Optional's `type`): its kind and the type of its tensors.
    case type(ValueKind, TensorType?)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensors([Tensor])
    case graphs([Graph])
}

/// One operation of a graph.
public struct Node: Sendable {
    /// Node name (may be empty in the file; the importer fills a stable one in).
    public var name: String
    /// Operator type, e.g. "Conv".
    public var opType: String
    /// Operator domain; "" is the default ONNX domain.
    public var domain: String
    /// Input value names; "" marks an omitted optional input.
    public var inputs: [String]
    /// Output value names; "" marks an omitted optional output.
    public var outputs: [String]
    /// Attributes by name.
    public var attributes: [String: AttributeValue]

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: AttributeValue] = [:]) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    /// "Conv 'conv1'" — how errors refer to a node.
    public var label: String { name.isEmpty ? opType : "\(opType) '\(name)'" }
}

/// A computation graph: nodes (in any order), its inputs, outputs and constant initializers.
public struct Graph: Sendable {
    /// Graph name.
    public var name: String
    /// Nodes.
    public var nodes: [Node]
    /// Inputs the caller feeds (initializers excluded).
    public var inputs: [ValueInfo]
    /// Outputs the caller gets.
    public var outputs: [ValueInfo]
    /// Declared types of intermediate values.
    public var valueInfo: [String: TensorType]
    /// Constant tensors by name.
    public var initializers: [String: Tensor]

    public init(name: String = "", nodes: [Node], inputs: [ValueInfo], outputs: [ValueInfo],
                valueInfo: [String: TensorType] = [:], initializers: [String: Tensor] = [:]) {
        self.name = name
        self.nodes = nodes
        self.inputs = inputs
        self.outputs = outputs
        self.valueInfo = valueInfo
        self.initializers = initializers
    }
}

/// A whole model: a graph plus what the file says about it.
public struct Model: Sendable {
    /// The main graph.
    public var graph: Graph
    /// Imported operator-set versions by domain ("" is the default ONNX domain).
    public var opsets: [String: Int]
    /// ONNX IR version of the file.
    public var irVersion: Int
    /// Tool that produced the file.
    public var producerName: String
    /// Version of that tool.
    public var producerVersion: String
    /// Model domain (reverse-DNS), free text.
    public var domain: String
    /// Model version number from the file.
    public var modelVersion: Int
    /// Free-text documentation.
    public var docString: String
    /// `metadata_props` key/value pairs.
    public var metadata: [String: String]

    public init(graph: Graph, opsets: [String: Int], irVersion: Int = 8, producerName: String = "",
                producerVersion: String = "", domain: String = "", modelVersion: Int = 0,
                docString: String = "", metadata: [String: String] = [:]) {
        self.graph = graph
        self.opsets = opsets
        self.irVersion = irVersion
        self.producerName = producerName
        self.producerVersion = producerVersion
        self.domain = domain
        self.modelVersion = modelVersion
        self.docString = docString
        self.metadata = metadata
    }
}
