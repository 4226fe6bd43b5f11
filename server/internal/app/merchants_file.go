package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// readMerchantsFile reads the file named by --merchants-file (format:
// merchant.FileEntry, documented in the README).
func readMerchantsFile(path string) ([]merchant.FileEntry, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("merchants file: %w", err)
	}
	entries, err := merchant.ParseFile(raw)
	if err != nil {
		return nil, fmt.Errorf("merchants file %s: %w", path, err)
	}
	return entries, nil
}

// importMerchants creates the file's merchants that do not exist yet;
// existing ones keep their state and credentials. Every problem of every
// entry is reported, each with its place.
func importMerchants(ctx context.Context, dir *merchant.Directory, scenarios sandbox.Scenarios, path string, entries []merchant.FileEntry) error {
	var problems []string
	for i, e := range entries {
		if _, ok := dir.Get(e.MchID); ok {
			continue
		}
		if _, err := dir.Import(ctx, e, scenarios); err != nil {
			place := fmt.Sprintf("merchants[%d] (%s)", i, e.MchID)
			var se *sandbox.Error
			if errors.As(err, &se) && len(se.Fields) > 0 {
				for _, f := range se.Fields {
					problems = append(problems, fmt.Sprintf("%s%s: %s", place, strings.ReplaceAll(f.Path, "/", "."), f.Message))
				}
				continue
			}
			problems = append(problems, fmt.Sprintf("%s: %v", place, err))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("merchants file %s: %s", path, strings.Join(problems, "; "))
	}
	return nil
}
