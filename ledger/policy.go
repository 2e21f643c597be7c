package ledger

import _ "embed"

// defaultPolicy is the shipped default policy (default.cedar), appended as
// the first policy entry of every new log.
//
//go:embed default.cedar
var defaultPolicy []byte
