package bucket

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolder names, for a message, the process holding the flock of the
// file f has open, from /proc/locks ("1: FLOCK  ADVISORY  WRITE 1234
// 00:2e:56789 0 EOF"; a waiter's line has "->" after the number), with
// its command name and whether it is stopped.
func lockHolder(f *os.File) string {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return "another process"
	}
	major := (st.Dev>>8)&0xfff | (st.Dev>>32)&^0xfff
	minor := st.Dev&0xff | (st.Dev>>12)&^0xff
	id := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	table, err := os.ReadFile("/proc/locks")
	if err != nil {
		return "another process"
	}
	var holders []string
	for line := range strings.Lines(string(table)) {
		fs := strings.Fields(line)
		if len(fs) < 6 || fs[1] != "FLOCK" || fs[5] != id {
			continue
		}
		pid, err := strconv.Atoi(fs[4])
		if err != nil {
			continue
		}
		holders = append(holders, describeProcess(pid))
	}
	if len(holders) == 0 {
		return "another process"
	}
	return strings.Join(holders, ", ")
}

// describeProcess returns "process <pid> (<command>)", with ", stopped"
// when it is (state T in /proc/<pid>/stat).
func describeProcess(pid int) string {
	desc := "process " + strconv.Itoa(pid)
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return desc
	}
	// pid (comm) state ...: comm may hold anything, the state follows
	// the last ')'.
	s := string(stat)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return desc
	}
	desc += " (" + s[open+1:end]
	if s[end+2] == 'T' || s[end+2] == 't' {
		desc += ", stopped"
	}
	return desc + ")"
}
