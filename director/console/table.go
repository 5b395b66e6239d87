package console

import (
	"fmt"
	"strings"
)

// Keyword is one keyword a command takes.
type Keyword struct {
	Name     string // lower case
	Type     Type
	Required bool
	// Console marks a keyword whose value only the console uses (export
	// keys out=FILE: the director returns rows, tapectl writes the file).
	// The director must not act on it.
	Console bool
	// Repeat: the keyword may be given several times (restore file=A
	// file=B); Command.Strs returns every value.
	Repeat bool
	Help   string // one line for "help COMMAND"
}

// Spec is one command of the console language. Adding a command is adding
// one Spec to the table in this file.
type Spec struct {
	// Name is the command, one or two lower-case words ("label", "list
	// volumes"). When the second word is also one of the command's
	// keywords, the user may write it with its value ("update
	// volume=Vol1"), as in Bareos.
	Name    string
	Aliases []string // other spellings, e.g. "exit" for "quit"
	Summary string   // one line for "help"
	// Keywords in usage order.
	Keywords []Keyword
	// Choice lists groups of keywords of which exactly one group must be
	// given, and given completely; keywords of two groups conflict.
	Choice [][]string
	// Topic: the bare words after the command form a command name (help
	// COMMAND), stored under the "topic" key.
	Topic bool
	// Local: the console handles the command itself (help, quit); the
	// director answers it only for consoles that send it anyway.
	Local    bool
	Notes    string   // optional paragraph for "help COMMAND"
	Examples []string // at least one; each must parse
}

// Keyword returns the keyword named name (lower case), or nil.
func (s *Spec) Keyword(name string) *Keyword {
	for i := range s.Keywords {
		if s.Keywords[i].Name == name {
			return &s.Keywords[i]
		}
	}
	return nil
}

func (s *Spec) inChoice(name string) bool {
	for _, g := range s.Choice {
		for _, k := range g {
			if k == name {
				return true
			}
		}
	}
	return false
}

// kwUsage writes "storage=NAME" or "barcodes".
func kwUsage(k *Keyword) string {
	if k.Type.Kind == Flag {
		return k.Name
	}
	return k.Name + "=" + k.Type.Arg
}

// Usage is the command's syntax line, e.g.
// "label (slots=LIST barcodes | slot=N volume=NAME) [storage=NAME] [pool=NAME] [encrypt] [drive=N]".
func (s *Spec) Usage() string {
	parts := []string{s.Name}
	_, second, _ := strings.Cut(s.Name, " ")
	for i := range s.Keywords {
		k := &s.Keywords[i]
		if k.Required && !s.inChoice(k.Name) {
			if k.Name == second && parts[0] == s.Name {
				parts[0] = s.Name + "=" + k.Type.Arg
				continue
			}
			parts = append(parts, kwUsage(k))
		}
	}
	if len(s.Choice) > 0 {
		var alts []string
		for _, g := range s.Choice {
			var ws []string
			for _, n := range g {
				ws = append(ws, kwUsage(s.Keyword(n)))
			}
			alts = append(alts, strings.Join(ws, " "))
		}
		parts = append(parts, "("+strings.Join(alts, " | ")+")")
	}
	for i := range s.Keywords {
		k := &s.Keywords[i]
		if !k.Required && !s.inChoice(k.Name) {
			parts = append(parts, "["+kwUsage(k)+"]")
		}
	}
	if s.Topic {
		parts = append(parts, "[COMMAND]")
	}
	return strings.Join(parts, " ")
}

// commands is the console language of this release.
var commands = []Spec{
	{
		Name:    "label",
		Summary: "label new cartridges as Tapeward volumes (optionally encrypted, one key per volume)",
		Keywords: []Keyword{
			{Name: "storage", Type: TName, Help: "the storage daemon whose changer holds the cartridges (default: the only [[storage]] configured)"},
			{Name: "pool", Type: TName, Help: "the pool the new volumes join (default: default_pool in director.toml)"},
			{Name: "slots", Type: TSlots, Help: "slots to label: numbers and ascending ranges, e.g. 1-5 or 1,3,7-9 (with barcodes)"},
			{Name: "barcodes", Type: TFlag, Help: "name each volume after its cartridge's barcode, read from the changer (with slots=)"},
			{Name: "slot", Type: TSlot, Help: "the one slot to label (with volume=)"},
			{Name: "volume", Type: TVolume, Help: "the name of the one volume to label (with slot=)"},
			{Name: "encrypt", Type: TFlag, Help: "give each volume its own key and encrypt in the drive (verified before the volume is used)"},
			{Name: "drive", Type: TDrive, Help: "the drive to label in, counting from 0"},
		},
		Choice: [][]string{{"slots", "barcodes"}, {"slot", "volume"}},
		Notes: "Either label many cartridges named by their barcodes (slots=LIST barcodes) or one cartridge with a name you choose (slot=N volume=NAME). " +
			"With one storage configured, storage= may be left out; pool= may be left out when director.toml sets default_pool. " +
			"The slots are checked against the changer before anything is written; a storage that stops answering stops the command (the slots not attempted are listed).",
		Examples: []string{
			"label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt",
			"label slots=1-5 barcodes encrypt",
			"label storage=sd1 pool=Offsite slot=7 volume=OFF007 encrypt drive=1",
		},
	},
	{
		Name:    "list volumes",
		Summary: "list volumes with their pool, status, slot and encryption state",
		Keywords: []Keyword{
			{Name: "pool", Type: TName, Help: "only volumes of this pool"},
			{Name: "storage", Type: TName, Help: "only volumes in this storage's changer"},
			{Name: "vault", Type: TFlag, Help: "the vault view: volumes that may go offsite now (Full or Used, encryption verified, no active job) and offsite volumes whose retention has ended (bring back), each with why"},
		},
		Examples: []string{"list volumes", "list volumes pool=Offsite", "list volumes pool=Weekly vault"},
	},
	{
		Name:    "export volume",
		Summary: "move a volume's cartridge from its slot to a free import/export slot of its storage's library, to take it offsite; the catalog then records it as not in the library",
		Keywords: []Keyword{
			{Name: "volume", Type: TVolume, Required: true, Help: "the volume to export (its cartridge must be in a slot, not in a drive or a job)"},
			{Name: "yes", Type: TFlag, Help: "do it; without yes the director only says what it would move"},
		},
		Examples: []string{"export volume=TW0004L6", "export volume=TW0004L6 yes"},
	},
	{
		Name:    "import",
		Summary: "move the cartridges found in the import/export slots back to free slots: known barcodes are recorded as in the library again, unknown ones are reported and left in place",
		Keywords: []Keyword{
			{Name: "storage", Type: TName, Help: "only this storage's library (default: every storage)"},
		},
		Examples: []string{"import", "import storage=sd1"},
	},
	{
		Name:    "prune volume",
		Summary: "prune a volume whose retention has ended: the jobs on it lose their file records and it becomes Purged, ready for recycling (the tape is not touched, no key is deleted)",
		Keywords: []Keyword{
			{Name: "volume", Type: TVolume, Required: true, Help: "the volume to prune (Append, Full or Used, no job using it)"},
			{Name: "yes", Type: TFlag, Help: "do it; without yes the director only says what it would remove"},
		},
		Notes: "The retention counts from the volume's last write; before it ends prune is refused and says when it ends. " +
			"A job with tape files on the volume is removed whole, also from the other volumes it wrote (as Bareos does): its file records go, its job record stays as history marked purged. " +
			"With recycle_pool set on the volume's pool, the purged volume moves to that pool. " +
			"A job that needs a volume prunes the expired volumes of its pool itself when the pool has auto_prune = true.",
		Examples: []string{"prune volume=TW0004L6", "prune volume=TW0004L6 yes"},
	},
	{
		Name:    "purge volume",
		Summary: "purge a volume regardless of its retention: the jobs on it lose their file records and it becomes Purged, ready for recycling (the tape is not touched, no key is deleted)",
		Keywords: []Keyword{
			{Name: "volume", Type: TVolume, Required: true, Help: "the volume to purge (not Archive, no job using it)"},
			{Name: "yes", Type: TFlag, Help: "do it; without yes the director only says what it would remove"},
		},
		Notes: "Like prune, without waiting for the retention: the data on the volume can then no longer be restored through the catalog. " +
			"Before a purged volume is written again it is relabelled with a new key (recycling); its old key stays in the key history.",
		Examples: []string{"purge volume=TW0004L6", "purge volume=TW0004L6 yes"},
	},
	{
		Name:     "list pools",
		Summary:  "list pools with their storage, encryption, volume limits and volumes by status",
		Examples: []string{"list pools"},
	},
	{
		Name:    "list keyevents",
		Summary: "list key events (key created, loaded, cleared, rewrapped), newest first",
		Keywords: []Keyword{
			{Name: "volume", Type: TVolume, Help: "only events of this volume"},
			{Name: "limit", Type: TLimit, Help: "show at most N events"},
		},
		Examples: []string{"list keyevents volume=OFF007 limit=20"},
	},
	{
		Name:    "list volumeevents",
		Summary: "list volume events (status changes, exports to and imports from the import/export slots, shreds), newest first, with who and why",
		Keywords: []Keyword{
			{Name: "volume", Type: TVolume, Help: "only events of this volume"},
			{Name: "limit", Type: TLimit, Help: "show at most N events"},
		},
		Examples: []string{"list volumeevents volume=OFF007", "list volumeevents limit=50"},
	},
	{
		Name:     "status director",
		Summary:  "show the director's state: version, catalog, active KEK id, running jobs, the next 24 h of scheduled jobs and the volume each would write to",
		Examples: []string{"status director"},
	},
	{
		Name:    "status storage",
		Summary: "show a storage daemon's drives, loaded volumes and drive encryption state",
		Keywords: []Keyword{
			{Name: "storage", Type: TName, Required: true, Help: "the storage daemon"},
		},
		Examples: []string{"status storage=sd1"},
	},
	{
		// Read-only, like status director and status storage: it changes
		// nothing (any console role that may read status may run it).
		Name:    "status kek",
		Summary: "show everything that still depends on a KEK (catalog keys, crypto caches, pending pushes) and whether it may be removed",
		Keywords: []Keyword{
			{Name: "kek", Type: Type{Kind: Name, Arg: "ID"}, Required: true, Help: "the KEK id (tapekey kek id FILE)"},
		},
		Notes: "Ends with one verdict line: \"nothing depends on KEK ID: it may be removed from director.toml and every storaged.toml\", " +
			"or \"KEK ID is still needed: …\" with what needs it (catalog keys wrapped only under it, crypto caches holding keys only under it, " +
			"pending crypto cache pushes, unreachable storages whose cache is unknown). Run it after rekey yes, before removing an old KEK.",
		Examples: []string{"status kek=3f0c9a1b22d4e5f6"},
	},
	{
		Name:    "mount",
		Summary: "load the cartridge in a slot into a drive",
		Keywords: []Keyword{
			{Name: "storage", Type: TName, Required: true, Help: "the storage daemon"},
			{Name: "slot", Type: TSlot, Required: true, Help: "the slot holding the cartridge"},
			{Name: "drive", Type: TDrive, Help: "the drive to load, counting from 0"},
		},
		Examples: []string{"mount storage=sd1 slot=3 drive=0"},
	},
	{
		Name:    "unmount",
		Summary: "clear the drive's key and unload its cartridge back to its slot",
		Keywords: []Keyword{
			{Name: "storage", Type: TName, Required: true, Help: "the storage daemon"},
			{Name: "drive", Type: TDrive, Required: true, Help: "the drive, counting from 0"},
		},
		Examples: []string{"unmount storage=sd1 drive=0"},
	},
	{
		Name:    "release",
		Summary: "clear the drive's key and release the drive (the cartridge stays loaded)",
		Keywords: []Keyword{
			{Name: "storage", Type: TName, Required: true, Help: "the storage daemon"},
			{Name: "drive", Type: TDrive, Required: true, Help: "the drive, counting from 0"},
		},
		Examples: []string{"release storage=sd1 drive=0"},
	},
	{
		Name:    "update volume",
		Summary: "change a volume's status, or the encryption of a volume that holds no data and is not mounted: yes, no, or rotate its key (the old key is kept in the volume's key history)",
		Keywords: []Keyword{
			{Name: "volume", Type: TVolume, Required: true, Help: "the volume"},
			{Name: "encrypt", Type: TEncrypt, Help: "yes or no: encrypted or not (the label is rewritten); rotate: a new key for the volume; refused while it is mounted or holds data"},
			{Name: "status", Type: TVolStatus, Help: "the volume's new status (only the changes jobs.md §4 allows; the refusal names them)"},
		},
		Choice: [][]string{{"encrypt"}, {"status"}},
		Notes: "Either encrypt= or status=. Jobs write only to Append volumes; Full, Used, Read-Only, Disabled, Archive and Error volumes are never selected. " +
			"Purged and Recycle are reached by prune and purge, not by update. Every status change is recorded (who, when, from, to).",
		Examples: []string{"update volume=OFF007 encrypt=rotate", "update volume=OFF007 status=Read-Only"},
	},
	{
		Name:    "update pool",
		Summary: "re-apply a pool's director.toml limits (retention, max volume bytes/jobs, use duration, recycle) to every volume of the pool",
		Keywords: []Keyword{
			{Name: "pool", Type: TName, Required: true, Help: "the pool, as named in director.toml"},
		},
		Notes:    "A volume takes its pool's limits when it is labelled; changing director.toml changes the pool, and its existing volumes only when asked with update pool.",
		Examples: []string{"update pool=Offsite"},
	},
	{
		Name:    "rekey",
		Summary: "rewrap every stored volume key under the active KEK (no tape is touched)",
		Keywords: []Keyword{
			{Name: "yes", Type: TFlag, Help: "do it; without yes the director only reports what it would rewrap"},
		},
		Notes: "Without yes, rekey is a dry run: the director reports how many keys (current and history) it would rewrap and which storages have crypto cache pushes pending, and changes nothing. " +
			"With yes it rewraps all of them in one transaction, then pushes every volume's keys into its storage's crypto cache and reports per storage; " +
			"a storage that is down gets them when it next connects.",
		Examples: []string{"rekey", "rekey yes"},
	},
	{
		Name:    "export keys",
		Summary: "export the wrapped volume keys (for DR with tapextract) to a file on the console's machine",
		Keywords: []Keyword{
			{Name: "pool", Type: TName, Help: "only volumes of this pool"},
			{Name: "out", Type: TPath, Required: true, Console: true, Help: "the file the console writes (on the console's machine, not the director's)"},
		},
		Notes:    "The director returns the rows; tapectl writes them to out=. Keys stay wrapped under their KEK.",
		Examples: []string{`export keys pool=Offsite out=offsite-keys.csv`, `export keys out="/media/usb stick/keys.csv"`},
	},
	{
		Name:    "shred volume",
		Summary: "crypto-shred a volume: destroy every copy of its keys the system holds (catalog, key history, every storage's crypto cache, drives); its data can never be read again",
		Keywords: []Keyword{
			{Name: "volume", Type: TVolume, Required: true, Help: "the volume whose keys to destroy (not mounted for a job)"},
			{Name: "yes", Type: TFlag, Help: "do it; without yes the director only says what would be destroyed"},
		},
		Notes: "This cannot be undone. Without yes, shred says what it would destroy and changes nothing. " +
			"With yes, in one catalog transaction the volume's current key and its whole key history are destroyed, the volume goes to Purged (\"shredded\") and the act is recorded in the key and volume events; " +
			"then every storage daemon removes the volume's keys from its crypto cache and drives — one that is down does it when it reconnects, and shred says it is pending. " +
			"Copies out of the system's reach are listed: keys exports written earlier (with their dates and who made them), catalog and cache backups.",
		Examples: []string{"shred volume=TW0004L6", "shred volume=TW0004L6 yes"},
	},
	{
		Name:    "run",
		Summary: "run a backup job now, in the background; prints its JobId",
		Keywords: []Keyword{
			{Name: "job", Type: TName, Required: true, Help: "the [[job]] to run"},
			{Name: "level", Type: TLevel, Help: "Full, Incremental or Differential (default: the job's level, Incremental unless it says otherwise)"},
			{Name: "yes", Type: TFlag, Help: "accepted for Bareos scripts: the job runs without a question either way"},
			{Name: "wait", Type: TFlag, Help: "follow the job with a live progress line and end with its report"},
		},
		Notes: "The job runs in the director and outlives the console: without wait the command returns the JobId at once (follow it with wait jobid=N or status director). " +
			"An Incremental or Differential without a prior Full of the same job, client and fileset runs as a Full, and the report says why.",
		Examples: []string{"run job=web1-home level=Full yes", "run job=web1-home wait"},
	},
	{
		Name:    "wait",
		Summary: "wait for a running job to end, with a live progress line, then show its report",
		Keywords: []Keyword{
			{Name: "jobid", Type: TJobID, Required: true, Help: "the JobId (run prints it; list jobs shows them)"},
		},
		Examples: []string{"wait jobid=42"},
	},
	{
		Name:    "cancel",
		Summary: "cancel a running or waiting job (it ends with status A; what is on tape and in the catalog stays)",
		Keywords: []Keyword{
			{Name: "jobid", Type: TJobID, Required: true, Help: "the JobId of a running or waiting job"},
		},
		Examples: []string{"cancel jobid=42"},
	},
	{
		Name:    "estimate",
		Summary: "ask a job's client how many files and bytes a run would take (nothing is written)",
		Keywords: []Keyword{
			{Name: "job", Type: TName, Required: true, Help: "the [[job]]"},
			{Name: "level", Type: TLevel, Help: "Full (default), Incremental or Differential"},
			{Name: "listing", Type: TFlag, Help: "also list every file it would take"},
		},
		Examples: []string{"estimate job=web1-home", "estimate job=web1-home level=Incremental listing"},
	},
	{
		Name:    "list jobs",
		Summary: "list jobs, newest first: JobId, job, client, level, status, files, bytes, start",
		Keywords: []Keyword{
			{Name: "job", Type: TName, Help: "only runs of this [[job]]"},
			{Name: "client", Type: TName, Help: "only jobs of this client"},
			{Name: "jobstatus", Type: TJobStatus, Help: "only jobs with this status letter: T, W, E, f, A, R, C or a waiting letter"},
			{Name: "type", Type: TJobType, Help: "only jobs of this type: Backup or Restore (Admin, Catalog)"},
			{Name: "days", Type: TInt(1, 36500), Help: "only jobs created in the last N days"},
			{Name: "last", Type: TFlag, Help: "only the most recent run of each job and client"},
			{Name: "limit", Type: TLimit, Help: "show at most N jobs"},
		},
		Examples: []string{"list jobs", "list jobs job=web1-home jobstatus=E days=7", "list jobs last", "list jobs type=Restore"},
	},
	{
		Name:    "restore",
		Summary: "restore files from the backups of a client: the newest version of each path as it was now or before a time, or from given jobs; shows the plan, then runs a Restore job",
		Keywords: []Keyword{
			{Name: "client", Type: TName, Help: "the client whose backups to restore from (not needed with jobid=)"},
			{Name: "fileset", Type: TName, Help: "the fileset, when the client has backups of several"},
			{Name: "current", Type: TFlag, Help: "as of the latest backups (the default): the last Full, the last Differential after it, every Incremental after that"},
			{Name: "before", Type: TTime, Help: `as it was before a time: "2026-11-30 12:00", 2026-11-30 or 2026-11 (the director's time zone)`},
			{Name: "jobid", Type: TJobIDs, Help: "exactly these backups, e.g. 41,42 (the newest version of each path among them)"},
			{Name: "file", Type: Type{Kind: Path, Arg: "PATH"}, Repeat: true, Help: "a path to restore (a directory: with everything under it); may be repeated; file=<LIST reads paths from a file on the console's machine, one a line"},
			{Name: "directory", Type: TDir, Repeat: true, Help: "a directory and everything under it; may be repeated"},
			{Name: "fileregex", Type: TText, Help: `the paths matching a regular expression (RE2 syntax), e.g. \.pdf$`},
			{Name: "all", Type: TFlag, Help: "every file of the backups"},
			{Name: "select", Type: TFlag, Help: "pick files in a tree browser (tapectl's interactive prompt: cd ls mark unmark … done)"},
			{Name: "restoreclient", Type: TName, Help: "the client to write the files on (default: the backup's client)"},
			{Name: "storage", Type: TName, Help: "the storage daemon to read with (default: the one holding the volumes)"},
			{Name: "where", Type: TDir, Help: "the directory to restore under (default /tmp/tapeward-restores); where=/ puts files back in place"},
			{Name: "strip_prefix", Type: TText, Help: "remove this prefix from each path before add_prefix and where"},
			{Name: "add_prefix", Type: TText, Help: "put this prefix before each path"},
			{Name: "add_suffix", Type: TText, Help: "append this to each file name"},
			{Name: "regexwhere", Type: TText, Help: "sed-like rules !from!to! (several, separated by ','); replaces where, strip_prefix, add_prefix and add_suffix"},
			{Name: "replace", Type: TReplace, Help: "what to do with a file that already exists (default always): replace it always, only if the backup's is newer or older, or never"},
			{Name: "dryrun", Type: TFlag, Help: "list what would be written where; write nothing"},
			{Name: "yes", Type: TFlag, Help: "run the restore; without yes the director shows the plan and runs nothing"},
			{Name: "wait", Type: TFlag, Help: "follow the job with a live progress line and end with its report"},
			{Name: "nowait", Type: TFlag, Help: "fail at once, naming them, when volumes are not in the library (default: the job waits for them, status M)"},
		},
		Notes: "Without yes the director shows the plan (files, bytes, jobs used, volumes with their slot or \"not in the library\", restore client, where, replace) and runs nothing; " +
			"tapectl asks whether to run it. Only successful backups (T, W) are read; a path recorded deleted by a later job of the chain is not restored. " +
			"The directories above each file are restored with their recorded attributes. While a volume is not in the library the job waits (status M, naming it) until import brings it back; with nowait it fails at once naming it.",
		Examples: []string{
			"restore client=web1 current all where=/tmp/r yes",
			`restore client=web1 before="2026-11-30 12:00" directory=/home/ann where=/tmp/r`,
			"restore client=web1 file=/etc/ssh/sshd_config file=/etc/hosts restoreclient=web2 replace=ifnewer yes",
			`restore jobid=41,42 fileregex="\\.pdf$" strip_prefix=/srv add_prefix=/restore yes`,
			"restore client=web1 file=<paths.txt where=/tmp/r dryrun",
			"restore client=web1 select",
		},
	},
	{
		Name:    "browse",
		Summary: "one line of the restore tree browser that restore … select opened (tapectl's prompt sends these for you)",
		Keywords: []Keyword{
			{Name: "session", Type: Type{Kind: Name, Arg: "ID"}, Required: true, Help: "the browse session restore … select printed"},
			{Name: "line", Type: TText, Required: true, Help: "cd DIR, ls, dir, pwd, find PATTERN, mark PATTERN, unmark PATTERN, markdir PATTERN, lsmark, count, estimate, done [yes], quit"},
		},
		Notes: "After restore client=NAME select, tapectl's prompt turns into the tree browser ($): each line is sent as browse session=ID line=…. " +
			"done shows the plan of the marked files and asks whether to run it; quit leaves without restoring. A session idle for 30 minutes ends.",
		Examples: []string{`browse session=3f2a9c01be77 line="mark *.conf"`, "browse session=3f2a9c01be77 line=done"},
	},
	{
		Name:    "list files",
		Summary: "list the files a job wrote, with their exact tape address",
		Keywords: []Keyword{
			{Name: "jobid", Type: TJobID, Required: true, Help: "the JobId"},
		},
		Notes:    "A path that is not valid UTF-8 or holds control characters is shown Go-quoted (\"/tmp/a\\nb\"), so one file is one line.",
		Examples: []string{"list files jobid=42"},
	},
	{
		Name:    "list jobmedia",
		Summary: "list the tape files a job wrote: part, volume, tape file, blocks, bytes, complete",
		Keywords: []Keyword{
			{Name: "jobid", Type: TJobID, Required: true, Help: "the JobId"},
		},
		Examples: []string{"list jobmedia jobid=42"},
	},
	{
		Name:    "list joblog",
		Summary: "show a job's log: what it did, its warnings and errors, and its report",
		Keywords: []Keyword{
			{Name: "jobid", Type: TJobID, Required: true, Help: "the JobId"},
		},
		Examples: []string{"list joblog jobid=42"},
	},
	{
		Name:    "status client",
		Summary: "ask a client's file daemon who it is and which jobs it runs",
		Keywords: []Keyword{
			{Name: "client", Type: TName, Required: true, Help: "the [[client]]"},
		},
		Examples: []string{"status client=web1"},
	},
	{
		Name:    "status scheduler",
		Summary: "list every scheduled run in the next days (time, job, level, pool) and the runs missed while the director was down",
		Keywords: []Keyword{
			{Name: "days", Type: TInt(1, 366), Help: "how many days ahead, from now (default 7)"},
			{Name: "job", Type: TName, Help: "only this [[job]]"},
			{Name: "client", Type: TName, Help: "only jobs of this [[client]]"},
			{Name: "schedule", Type: TName, Help: "only jobs following this [[schedule]]"},
		},
		Notes: "Times are in each schedule's time zone. The level and pool are the Run line's overrides applied to the job " +
			"(an Incremental or Differential with no prior Full runs as a Full into the Full pool). " +
			"Missed runs (the director was down longer than the job's catch_up, or an earlier run of the same job) are listed for the last days as well; " +
			"the latest missed run of each job younger than catch_up was started late at start-up (list jobs shows it, its log says how late). " +
			"status director shows the next 24 hours with the volume each run would write to.",
		Examples: []string{"status scheduler", "status scheduler days=1", "status scheduler days=14 client=web1", "status scheduler job=web1-home", "status scheduler schedule=WeeklyCycle"},
	},
	{
		Name:     "help",
		Summary:  "list the commands, or show one command's keywords and an example",
		Topic:    true,
		Local:    true,
		Examples: []string{"help", "help label", "help list volumes"},
	},
	{
		Name:     "quit",
		Aliases:  []string{"exit"},
		Summary:  "leave the console",
		Local:    true,
		Examples: []string{"quit"},
	},
}

// table indexes specs for parsing.
type table struct {
	specs    []*Spec
	byName   map[string]*Spec   // full names and aliases
	families map[string][]*Spec // first word → two-word commands
}

// newTable checks the specs and indexes them.
func newTable(specs []Spec) (*table, error) {
	t := &table{byName: map[string]*Spec{}, families: map[string][]*Spec{}}
	for i := range specs {
		s := &specs[i]
		words := strings.Fields(s.Name)
		if len(words) < 1 || len(words) > 2 || strings.Join(words, " ") != s.Name || lower(s.Name) != s.Name {
			return nil, fmt.Errorf("command %q: name must be one or two lower-case words", s.Name)
		}
		if s.Summary == "" || len(s.Examples) == 0 {
			return nil, fmt.Errorf("command %q: needs a summary and an example", s.Name)
		}
		for _, n := range append([]string{s.Name}, s.Aliases...) {
			if _, dup := t.byName[n]; dup {
				return nil, fmt.Errorf("command %q: name %q used twice", s.Name, n)
			}
			t.byName[n] = s
		}
		if len(words) == 2 {
			t.families[words[0]] = append(t.families[words[0]], s)
		}
		seen := map[string]bool{}
		for _, k := range s.Keywords {
			if k.Name == "" || lower(k.Name) != k.Name || strings.ContainsAny(k.Name, " \t=\"") {
				return nil, fmt.Errorf("command %q: bad keyword name %q", s.Name, k.Name)
			}
			if seen[k.Name] {
				return nil, fmt.Errorf("command %q: keyword %q twice", s.Name, k.Name)
			}
			seen[k.Name] = true
			if k.Type.Kind != Flag && k.Type.Arg == "" {
				return nil, fmt.Errorf("command %q: keyword %q has no placeholder", s.Name, k.Name)
			}
		}
		inGroup := map[string]bool{}
		for _, g := range s.Choice {
			if len(g) == 0 {
				return nil, fmt.Errorf("command %q: empty choice group", s.Name)
			}
			for _, n := range g {
				k := s.Keyword(n)
				if k == nil || k.Required || inGroup[n] {
					return nil, fmt.Errorf("command %q: choice keyword %q must be an optional keyword in one group", s.Name, n)
				}
				inGroup[n] = true
			}
		}
		if s.Topic && len(s.Keywords) > 0 {
			return nil, fmt.Errorf("command %q: a topic command takes no keywords", s.Name)
		}
		t.specs = append(t.specs, s)
	}
	for first := range t.families {
		if _, ok := t.byName[first]; ok {
			return nil, fmt.Errorf("command %q: both a command and a command family", first)
		}
	}
	return t, nil
}

var std = mustTable(commands)

func mustTable(specs []Spec) *table {
	t, err := newTable(specs)
	if err != nil {
		panic("console: bad command table: " + err.Error())
	}
	return t
}

// Commands returns the command table in help order. The specs are shared:
// do not modify them.
func Commands() []*Spec { return append([]*Spec(nil), std.specs...) }

// Lookup returns the command named name (canonical name or alias, any case),
// or nil.
func Lookup(name string) *Spec { return std.byName[lower(strings.Join(strings.Fields(name), " "))] }
