package index

// Lookup exposes lookup to the tests of package index_test, which check
// it against a model.
var Lookup = (*Index).lookup
