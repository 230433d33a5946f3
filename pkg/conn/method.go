package conn

// Method identifies a request method. Known methods get a constant; any other token is MethodOther and
// its text is available from Connection.MethodName (CONTRACT H3). Methods are case-sensitive: "get" is
// MethodOther, not MethodGet.
type Method uint8

// Known methods (RFC 9110 9.3, RFC 5789).
const (
	MethodOther Method = iota
	MethodGet
	MethodHead
	MethodPost
	MethodPut
	MethodDelete
	MethodConnect
	MethodOptions
	MethodTrace
	MethodPatch
)

var methodNames = [...]string{"OTHER", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// String returns the method's canonical name, or "OTHER" for MethodOther (a bounded label value).
func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "OTHER"
}

// lookupMethod maps a method token to its constant without allocating.
func lookupMethod(b []byte) Method {
	switch len(b) {
	case 3:
		switch string(b) {
		case "GET":
			return MethodGet
		case "PUT":
			return MethodPut
		}
	case 4:
		switch string(b) {
		case "HEAD":
			return MethodHead
		case "POST":
			return MethodPost
		}
	case 5:
		switch string(b) {
		case "TRACE":
			return MethodTrace
		case "PATCH":
			return MethodPatch
		}
	case 6:
		if string(b) == "DELETE" {
			return MethodDelete
		}
	case 7:
		switch string(b) {
		case "CONNECT":
			return MethodConnect
		case "OPTIONS":
			return MethodOptions
		}
	}
	return MethodOther
}
