// Package core is Grapevine's protocol: gossip of signed announcements that
// forgets departed servers safely, as a pure state machine.
//
// A Node has no goroutines, reads no clock and does no I/O. The driver
// (the daemon, or the simulator) calls Step with the local time and an
// Input (Tick, Connected, Disconnected, DialFailed, Received, RTTSample,
// SetServices, Leave, Import, Forget, Publish, Unpublished, Persisted),
// then Ready, and acts on the result in this order:
//
//  1. persist Ready.Counter, if set, and once it is on disk step
//     Persisted{Counter} and take that Ready too: until then the core
//     sends none of its own records above the last acknowledged counter
//     (a failed write is simply not acknowledged);
//  2. persist the state (State) if Ready.StateChanged;
//  3. send Ready.Messages, cancel Ready.CancelDials, start Ready.Dials;
//  4. log or show Ready.Events, which explain every decision.
//
// The rules (R1 relay only what is live, R2 refresh, R3 dial order, R4
// forget by the local clock only while healthy, R5 the elapsed-time
// measure, R6 bounds, R7 graceful leave) and their defaults are in
// Config and docs/design.md. Variant switches rules off for tests and the
// simulator's designs.
package core
