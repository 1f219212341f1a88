package demo

import "syscall"

// sysProcAttr makes a node get SIGTERM if the demo dies without stopping
// it, so no node outlives a killed demo.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
