package peerbook

import (
	"fmt"
	"sync"

	"grapevine/core"
)

// Memory is a Book in memory: the reference for SQLite, and storage for
// tests and the simulator. It checks and stores states exactly as SQLite
// does.
type Memory struct {
	mu     sync.Mutex
	st     *state
	closed bool
}

var _ Book = (*Memory)(nil)

// NewMemory returns an empty book.
func NewMemory() *Memory { return &Memory{st: newState(0, 0, 0)} }

// Load returns a copy of the stored state.
func (m *Memory) Load() (core.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return core.State{}, ErrClosed
	}
	return m.st.core(), nil
}

// Save replaces the stored state with a copy of st.
func (m *Memory) Save(st core.State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	n, err := prepare(st, m.st)
	if err != nil {
		return err
	}
	n.counter = max(n.counter, m.st.counter)
	m.st = n
	return nil
}

// SaveCounter stores c, refusing a lower value than the stored one.
func (m *Memory) SaveCounter(c int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if c < m.st.counter {
		return fmt.Errorf("%w: stored %d, got %d", ErrCounterBackwards, m.st.counter, c)
	}
	m.st.counter = c
	return nil
}

// Close makes every later call fail with ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
