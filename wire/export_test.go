package wire

// For the tests only.
var (
	Encode     = encode
	ReadFrame  = readFrame
	WriteFrame = writeFrame
)
