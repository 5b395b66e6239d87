package console

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Role is what a console may do. The director gives each configured
// console one role ([[console]] in director.toml); a role may run
// everything the roles before it may:
//
//	read      look: list, status, help, estimate, wait
//	operator  read + work the library and run jobs: label, mount, unmount, release, run, cancel
//	keyadmin  operator + key custody: export keys, rekey, shred volume, update volume … encrypt=
type Role int

// The roles, least powerful first. The zero Role runs nothing.
const (
	RoleRead Role = iota + 1
	RoleOperator
	RoleKeyAdmin
)

var roleNames = [...]string{RoleRead: "read", RoleOperator: "operator", RoleKeyAdmin: "keyadmin"}

// Roles lists the role names, least powerful first.
func Roles() []string { return append([]string(nil), roleNames[1:]...) }

// ParseRole returns the role named s (exactly as Roles spells it).
func ParseRole(s string) (Role, bool) {
	for r := RoleRead; r <= RoleKeyAdmin; r++ {
		if roleNames[r] == s {
			return r, true
		}
	}
	return 0, false
}

func (r Role) String() string {
	if r >= RoleRead && r <= RoleKeyAdmin {
		return roleNames[r]
	}
	return fmt.Sprintf("no role (%d)", int(r))
}

// Allows reports whether a console with role r may run what needs role
// need.
func (r Role) Allows(need Role) bool {
	return r >= RoleRead && r <= RoleKeyAdmin && r >= need
}

// need is what a command asks of a console's role: Role to run it at all,
// and a higher role for some keywords when they are given.
type need struct {
	Role     Role
	Keywords map[string]Role
}

// needs is the role each command needs: the one place that says who may
// do what. A key is a command name, or the first word of a family
// ("status"), which then covers every command of the family, also ones
// added later — so only a family whose every member is harmless may have
// one entry. Every command of the table matches exactly one entry, and
// every entry matches a command (TestEveryCommandHasOneRole): a command
// cannot be added without saying who may run it.
var needs = map[string]need{
	"help":              {Role: RoleRead},
	"quit":              {Role: RoleRead},
	"list volumes":      {Role: RoleRead},
	"list keyevents":    {Role: RoleRead},
	"list volumeevents": {Role: RoleRead},
	"list pools":        {Role: RoleRead},
	"status":            {Role: RoleRead}, // status director, status storage=, status kek=, status client=, status scheduler
	"list jobs":         {Role: RoleRead},
	"list files":        {Role: RoleRead},
	"list jobmedia":     {Role: RoleRead},
	"list joblog":       {Role: RoleRead},
	"estimate":          {Role: RoleRead}, // asks the client, writes nothing
	"wait":              {Role: RoleRead}, // follows a job, changes nothing
	"run":               {Role: RoleOperator},
	"cancel":            {Role: RoleOperator},
	"restore":           {Role: RoleOperator}, // writes files on a client (dryrun and the plan included: it reads every path of a backup)
	"browse":            {Role: RoleOperator}, // the restore tree browser's lines (done yes runs a restore)
	"label":             {Role: RoleOperator},
	"mount":             {Role: RoleOperator},
	"unmount":           {Role: RoleOperator},
	"release":           {Role: RoleOperator},
	// Changing a volume's encryption (yes, no, rotate) is key custody;
	// other updates of a volume are an operator's.
	"update volume": {Role: RoleOperator, Keywords: map[string]Role{"encrypt": RoleKeyAdmin}},
	"update pool":   {Role: RoleOperator},
	"rekey":         {Role: RoleKeyAdmin},
	"export keys":   {Role: RoleKeyAdmin},
	"shred volume":  {Role: RoleKeyAdmin}, // destroys keys: key custody
	"export volume": {Role: RoleOperator},
	"import":        {Role: RoleOperator},
	"prune volume":  {Role: RoleOperator},
	"purge volume":  {Role: RoleOperator},
}

// needOf returns the entry that covers the command named name: its own,
// else its family's.
func needOf(name string) (need, bool) {
	if n, ok := needs[name]; ok {
		return n, true
	}
	if first, _, two := strings.Cut(name, " "); two {
		n, ok := needs[first]
		return n, ok
	}
	return need{}, false
}

// Needs returns the role a console needs to run cmd as given, and the
// keyword that raised it above the command's own role ("" if none). A
// command with no entry needs a role no console has (ok is false).
func Needs(cmd Command) (role Role, keyword string, ok bool) {
	n, ok := needOf(cmd.Name)
	if !ok {
		return RoleKeyAdmin + 1, "", false
	}
	role = n.Role
	for _, k := range slices.Sorted(maps.Keys(n.Keywords)) {
		if r := n.Keywords[k]; cmd.Has(k) && r > role {
			role, keyword = r, k
		}
	}
	return role, keyword, true
}

// MinRole is the least role that can run some form of the command: its
// own, raised by the keywords it cannot be run without. ok is false for a
// command with no entry.
func MinRole(s *Spec) (Role, bool) {
	n, ok := needOf(s.Name)
	if !ok {
		return RoleKeyAdmin + 1, false
	}
	r := n.Role
	for k, kr := range n.Keywords {
		if kw := s.Keyword(k); kw != nil && kw.Required && kr > r {
			r = kr
		}
	}
	return r, true
}

// keywordRole returns the role a keyword of command name needs when it is
// higher than the command's own (0 otherwise).
func keywordRole(name, keyword string) Role {
	n, ok := needOf(name)
	if !ok {
		return 0
	}
	if r := n.Keywords[keyword]; r > n.Role {
		return r
	}
	return 0
}

// PermissionError is a command the console's role may not run.
type PermissionError struct {
	Console string // the console's configured name
	Role    Role   // its role
	Command string // the command's canonical name
	Keyword string // the keyword that needs the higher role ("" : the command itself)
	Need    Role   // the role it needs
	NoEntry bool   // the command has no entry in the role table: no console may run it
}

func (e *PermissionError) Error() string {
	what := fmt.Sprintf("%q", e.Command)
	if e.Keyword != "" {
		what += " with " + e.Keyword + "="
	}
	if e.NoEntry {
		return fmt.Sprintf("console %q (role %s) may not run %s: no role may (the command has no entry in the director's role table)", e.Console, e.Role, what)
	}
	return fmt.Sprintf("console %q (role %s) may not run %s: it needs role %s", e.Console, e.Role, what, e.Need)
}

// Permit returns nil when the console named console, whose role is role,
// may run cmd as given, and a *PermissionError otherwise.
func Permit(cmd Command, console string, role Role) error {
	need, keyword, ok := Needs(cmd)
	if ok && role.Allows(need) {
		return nil
	}
	return &PermissionError{Console: console, Role: role, Command: cmd.Name, Keyword: keyword, Need: need, NoEntry: !ok}
}
