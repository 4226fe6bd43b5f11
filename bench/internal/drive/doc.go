package drive

import (
	"os"
	"strings"
)

// LoadAverage is the 1, 5 and 15-minute load averages: the machine may be
// shared, and a figure taken under load says so.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ReplaceSection puts section, which starts with begin and ends with end,
// in place of the file's old one between those markers, or appends it.
func ReplaceSection(path, begin, end, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i >= 0 && j > i {
		text = text[:i] + strings.TrimRight(section, "\n") + text[j+len(end):]
	} else {
		text = strings.TrimRight(text, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
