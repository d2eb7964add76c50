// Command agentlock-interop reads and writes agent.lock files exactly as the Go seed does, so
// the C++ tests can check that both sides read each other (tests/interop/test_go_interop.cpp).
//
//	agentlock-interop write <path> <session> <hostname>
//	    writes a lock for this process with time.Now(), as the seed's write() does, and prints
//	    the pid and acquired_at (RFC 3339, UTC, nanoseconds) on two lines
//	agentlock-interop read <path>
//	    reads a lock as the seed's Read() does and prints pid, acquired_at (UTC, RFC3339Nano),
//	    session_id and hostname on four lines; exit status 1 on any error
//	agentlock-interop marshal <pid> <rfc3339> <session> <hostname>
//	    prints json.MarshalIndent of that LockInfo with acquired_at in UTC, without a newline
//	agentlock-interop hold <path> <session> <hostname>
//	    writes a lock for this process as write does, then holds it: sleeps until killed
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	_ "time/tzdata" // TZ=Asia/Kolkata works even without the system's zoneinfo
)

// LockInfo is the seed's struct, field for field and tag for tag.
type LockInfo struct {
	PID        int       `json:"pid"`
	AcquiredAt time.Time `json:"acquired_at"`
	SessionID  string    `json:"session_id,omitempty"`
	Hostname   string    `json:"hostname,omitempty"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "agentlock-interop: "+format+"\n", args...)
	os.Exit(1)
}

func write(path, session, hostname string) {
	info := LockInfo{
		PID:        os.Getpid(),
		AcquiredAt: time.Now(),
		SessionID:  session,
		Hostname:   hostname,
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		fail("marshaling lock info: %v", err)
	}
	if err := os.WriteFile(path, data, 0644); err != nil {
		fail("writing lock file: %v", err)
	}
	fmt.Printf("%d\n%s\n", info.PID, info.AcquiredAt.UTC().Format(time.RFC3339Nano))
}

func read(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("reading lock file: %v", err)
	}
	var info LockInfo
	if err := json.Unmarshal(data, &info); err != nil {
		fail("invalid lock file: %v", err)
	}
	fmt.Printf("%d\n%s\n%s\n%s\n", info.PID, info.AcquiredAt.UTC().Format(time.RFC3339Nano),
		info.SessionID, info.Hostname)
}

func marshal(pid, acquired, session, hostname string) {
	p, err := strconv.Atoi(pid)
	if err != nil {
		fail("pid: %v", err)
	}
	t, err := time.Parse(time.RFC3339, acquired)
	if err != nil {
		fail("acquired_at: %v", err)
	}
	info := LockInfo{PID: p, AcquiredAt: t.UTC(), SessionID: session, Hostname: hostname}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		fail("marshaling lock info: %v", err)
	}
	os.Stdout.Write(data)
}

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 4 && args[0] == "write":
		write(args[1], args[2], args[3])
	case len(args) == 2 && args[0] == "read":
		read(args[1])
	case len(args) == 4 && args[0] == "hold":
		write(args[1], args[2], args[3])
		for {
			time.Sleep(time.Hour)
		}
	case len(args) == 5 && args[0] == "marshal":
		marshal(args[1], args[2], args[3], args[4])
	default:
		fail("usage: write <path> <session> <hostname> | hold <path> <session> <hostname> | read <path> | marshal <pid> <rfc3339> <session> <hostname>")
	}
}
