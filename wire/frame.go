package wire

import (
	"encoding/binary"
	"fmt"
	"io"

	"grapevine/core"
)

// FrameHeader is the size of a frame's length prefix.
const FrameHeader = 4

// chunk is how much of a large frame is allocated ahead of its bytes.
const chunk = 64 << 10

// EncodeFrame returns m as a frame: its length, then its encoding.
func EncodeFrame(m core.Msg) ([]byte, error) {
	b := make([]byte, FrameHeader, FrameHeader+Size(m))
	b, err := Append(b, m)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-FrameHeader))
	return b, nil
}

// writeFrame writes msg (an encoded message) as one frame, in one Write.
func writeFrame(w io.Writer, msg []byte) error {
	if len(msg) > MaxFrame {
		return &Error{Reason: ReasonTooLarge, Field: "length", Offset: -FrameHeader, Detail: fmt.Sprintf("%d bytes, limit %d", len(msg), MaxFrame)}
	}
	b := make([]byte, FrameHeader+len(msg))
	binary.BigEndian.PutUint32(b, uint32(len(msg)))
	copy(b[FrameHeader:], msg)
	_, err := w.Write(b)
	return err
}

// readFrame reads one frame and returns its message bytes. A length above
// limit (MaxFrame if limit <= 0 or above it) is an *Error with ReasonTooLarge,
// returned before the body is read or allocated; a large body is
// allocated as it arrives. A stream that ends cleanly before a frame
// returns io.EOF; one that ends inside a frame, io.ErrUnexpectedEOF.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	return ReadFrameGrowing(r, limit, nil)
}

// ReadFrameGrowing is readFrame for a reader that accounts for its
// buffers: before the body's buffer grows from capacity from to to bytes,
// grow is called, and an error from it ends the read. The first buffer
// grows from 0. With grow nil it reads as readFrame does.
func ReadFrameGrowing(r io.Reader, limit int, grow func(from, to int) error) ([]byte, error) {
	if limit <= 0 || limit > MaxFrame {
		limit = MaxFrame
	}
	var h [FrameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(h[:]))
	if n > limit {
		return nil, &Error{Reason: ReasonTooLarge, Field: "length", Offset: -FrameHeader, Detail: fmt.Sprintf("%d bytes, limit %d", n, limit)}
	}
	b := []byte{}
	for len(b) < n {
		next := min(n, max(len(b)*2, chunk))
		if next > cap(b) {
			if grow != nil {
				if err := grow(cap(b), next); err != nil {
					return nil, err
				}
			}
			nb := make([]byte, len(b), next)
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(r, b[len(b):next])
		b = b[:len(b)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b, nil
}
