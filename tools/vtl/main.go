// Command vtl is Tapeward's virtual tape library: an SMC changer and LTO-6
// drives with in-drive AES-256-GCM encryption, reached over a unix socket
// (storaged/scsi/vtlwire). See tools/vtl/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tapeward/tapeward/tools/vtl/emu"
	"github.com/tapeward/tapeward/tools/vtl/iscsi"
)

const usage = `usage:
  vtl serve  --dir DIR [--socket PATH] [--iscsi HOST:PORT [--iscsi-target IQN] [--iscsi-allow IQN]… [--iscsi-advertise HOST:PORT]…
             [--iscsi-chap-user NAME --iscsi-chap-secret-file FILE
              [--iscsi-chap-target-user NAME --iscsi-chap-target-secret-file FILE]]] [--slots 8] [--drives 2] [--ie-slots 1] [--capacity 2GiB]
             [--personality drive1=no-ame[,drive0=hp]] [--default-personality ibm]
             [--load-delay 200ms] [--require-unload] [--skip-on-crypto-error] [--trace]
             [--fault UNIT:KEY=VALUE[,KEY=VALUE…]]…
  vtl fault  --socket PATH UNIT:KEY=VALUE[,KEY=VALUE…] | UNIT:none
  vtl status --socket PATH [--json]
  vtl stats  --socket PATH [--reset] [--json]   (blocks and bytes READ per drive and per cartridge)
  vtl load   --socket PATH --slot N --drive N
  vtl unload --socket PATH --drive N
  vtl move   --socket PATH --from ADDR --to ADDR   (element addresses, e.g. 0x1003 → 0x0010: the operator at the I/E station)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "status":
		err = status(os.Args[2:], os.Stdout)
	case "load", "unload":
		err = move(os.Args[1], os.Args[2:])
	case "move":
		err = panelMove(os.Args[2:])
	case "fault":
		err = fault(os.Args[2:])
	case "stats":
		err = stats(os.Args[2:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "vtl: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vtl:", err)
		os.Exit(1)
	}
}

// parseSize parses "2GiB", "512MiB", "4M", "1000000".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
		{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q (e.g. 2GiB, 64MiB)", s)
	}
	return n * mult, nil
}

// parsePersonalities parses "drive1=no-ame,drive0=hp" (repeatable flag).
func parsePersonalities(vals []string) (map[int]string, error) {
	m := map[int]string{}
	for _, v := range vals {
		for _, item := range strings.Split(v, ",") {
			k, name, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok || !strings.HasPrefix(k, "drive") {
				return nil, fmt.Errorf("--personality %q: want driveN=NAME", item)
			}
			i, err := strconv.Atoi(k[5:])
			if err != nil || i < 0 {
				return nil, fmt.Errorf("--personality %q: bad drive number", item)
			}
			if _, err := emu.LookupPersonality(name); err != nil {
				return nil, err
			}
			m[i] = name
		}
	}
	return m, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := fs.String("dir", "", "library directory (cartridge files, inventory)")
	socket := fs.String("socket", "", "unix socket path")
	slots := fs.Int("slots", 8, "storage slots")
	drives := fs.Int("drives", 2, "drives")
	ieSlots := fs.Int("ie-slots", 1, "import/export elements (the I/E station), at 0x0010 upwards")
	capacity := fs.String("capacity", "2GiB", "capacity of newly created cartridges")
	var pers multiFlag
	fs.Var(&pers, "personality", "per-drive personality, driveN=ibm|hp|no-ame|lying (repeatable, comma-separated)")
	defPers := fs.String("default-personality", "ibm", "personality of drives not named in --personality (and of the changer strings)")
	loadDelay := fs.Duration("load-delay", 200*time.Millisecond, "time a drive reports 02/04/01 BECOMING READY after a cartridge is moved in")
	requireUnload := fs.Bool("require-unload", false, "MOVE MEDIUM from a drive that is still loaded fails with 05/53/01 instead of unloading it")
	skip := fs.Bool("skip-on-crypto-error", false, "advance past a block that fails with 74/xx (default: position unchanged, like mhVTL)")
	trace := fs.Bool("trace", false, "log each CDB (opcode name and key fields; never data or keys)")
	var faultSpecs multiFlag
	fs.Var(&faultSpecs, "fault", "misbehave like real devices, UNIT:KEY=VALUE,… with keys max_transfer, max_block, position (zero|stale), position_past_ew, short_element_status, flip_read, flip_block, flip_offset (repeatable; see README)")
	iscsiAddr := fs.String("iscsi", "", "also (or only) serve the library as an iSCSI target on HOST:PORT (LUN 0 the changer, LUN 1.. the drives)")
	iscsiName := fs.String("iscsi-target", iscsi.DefaultName, "the iSCSI target name (IQN)")
	var iscsiAllow multiFlag
	fs.Var(&iscsiAllow, "iscsi-allow", "initiator IQN allowed to log in (repeatable; default: any)")
	var advertise multiFlag
	fs.Var(&advertise, "iscsi-advertise", "HOST:PORT SendTargets reports as the target's address (repeatable; default: the address the initiator connected to — set it behind NAT or a port forward)")
	chapUser := fs.String("iscsi-chap-user", "", "require CHAP from initiators: the user name")
	chapFile := fs.String("iscsi-chap-secret-file", "", "file holding the CHAP secret (first line; at least 12 bytes)")
	tchapUser := fs.String("iscsi-chap-target-user", "", "for mutual CHAP: the name the target answers initiators' challenges with")
	tchapFile := fs.String("iscsi-chap-target-secret-file", "", "for mutual CHAP: file holding the target's own CHAP secret (first line; at least 12 bytes, not the initiators' secret)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *socket == "" && *iscsiAddr == "" {
		return errors.New("serve needs --dir and --socket and/or --iscsi")
	}
	var tcfg iscsi.Config
	if *iscsiAddr != "" {
		tcfg = iscsi.Config{Name: *iscsiName, Allow: iscsiAllow, CHAPUser: *chapUser, Advertise: advertise}
		if (*chapUser == "") != (*chapFile == "") {
			return errors.New("--iscsi-chap-user and --iscsi-chap-secret-file go together")
		}
		if (*tchapUser == "") != (*tchapFile == "") {
			return errors.New("--iscsi-chap-target-user and --iscsi-chap-target-secret-file go together")
		}
		var err error
		if tcfg.CHAPSecret, err = readSecretLine("CHAP secret", *chapFile); err != nil {
			return err
		}
		tcfg.TargetCHAPUser = *tchapUser
		if tcfg.TargetCHAPSecret, err = readSecretLine("target CHAP secret", *tchapFile); err != nil {
			return err
		}
		if err := tcfg.Check(); err != nil { // before any cartridge is made
			return err
		}
	} else if len(iscsiAllow) > 0 || len(advertise) > 0 || *chapUser != "" || *chapFile != "" || *tchapUser != "" || *tchapFile != "" || *iscsiName != iscsi.DefaultName {
		return errors.New("the --iscsi-… options need --iscsi HOST:PORT")
	}
	capBytes, err := parseSize(*capacity)
	if err != nil {
		return err
	}
	pm, err := parsePersonalities(pers)
	if err != nil {
		return err
	}
	faults := map[string]emu.Faults{}
	for _, spec := range faultSpecs {
		unit, f, err := emu.ParseFaults(spec, parseSize)
		if err != nil {
			return err
		}
		faults[unit] = f
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	lib, err := emu.NewLibrary(emu.Config{
		Dir: *dir, Slots: *slots, Drives: *drives, IESlots: *ieSlots, Capacity: capBytes,
		Personalities: pm, DefaultPersonality: *defPers, LoadDelay: *loadDelay,
		RequireUnload: *requireUnload, SkipOnCryptoError: *skip, Logger: log, Trace: *trace,
		Faults: faults,
	})
	if err != nil {
		return err
	}
	defer lib.Close()
	var tgt *iscsi.Target
	var tln net.Listener
	if *iscsiAddr != "" {
		if tgt, err = iscsi.New(lib, tcfg); err != nil {
			return err
		}
		if tln, err = net.Listen("tcp", *iscsiAddr); err != nil {
			return err
		}
		defer tln.Close()
	}
	var ln net.Listener
	if *socket != "" {
		if fi, err := os.Lstat(*socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			// A stale socket from a previous run; refuse if someone answers.
			if c, err := net.Dial("unix", *socket); err == nil {
				c.Close()
				return fmt.Errorf("%s: another vtl is serving on it", *socket)
			}
			os.Remove(*socket)
		}
		if ln, err = net.Listen("unix", *socket); err != nil {
			return err
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(true)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	attrs := []any{"dir", *dir, "slots", *slots, "drives", *drives, "capacity", capBytes}
	if ln != nil {
		attrs = append(attrs, "socket", *socket)
	}
	if tln != nil {
		// Tests read the port of --iscsi 127.0.0.1:0 from this line.
		attrs = append(attrs, "iscsi", tln.Addr().String(), "iscsi_target", tgt.Name(), "chap", *chapUser != "", "allow", len(iscsiAllow))
	}
	log.Info("vtl serving", attrs...)
	// Both servers run until a signal; either failing stops the other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	n := 0
	if ln != nil {
		n++
		go func() { errs <- emu.NewServer(lib).Serve(ctx, ln); cancel() }()
	}
	if tln != nil {
		n++
		go func() { errs <- tgt.Serve(ctx, tln); cancel() }()
	}
	for range n {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if *socket != "" {
		os.Remove(*socket)
	}
	log.Info("vtl stopped")
	return err
}

func panelFlags(name string, args []string) (*flag.FlagSet, *string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	socket := fs.String("socket", "", "unix socket path of a running vtl")
	return fs, socket, nil
}

func status(args []string, w io.Writer) error {
	fs, socket, _ := panelFlags("status", args)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" {
		return errors.New("status needs --socket")
	}
	p, err := emu.DialPanel(*socket)
	if err != nil {
		return err
	}
	defer p.Close()
	resp, err := p.Do(emu.PanelRequest{Op: "status"})
	if err != nil {
		return err
	}
	st := resp.Status
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "changer\t%s %s\tserial %s\n", st.Changer.Vendor, st.Changer.Product, st.Changer.Serial)
	for _, s := range st.Slots {
		fmt.Fprintf(tw, "slot %d\t0x%04X\t%s\n", s.Slot, s.Address, orDash(s.Barcode))
	}
	for _, s := range st.IESlots {
		fmt.Fprintf(tw, "import/export %d\t0x%04X\t%s\n", s.Slot, s.Address, orDash(s.Barcode))
	}
	for _, d := range st.Drives {
		key := "no key"
		if d.KeyLoaded {
			key = "key " + d.Fingerprint
		}
		fmt.Fprintf(tw, "drive %d\t0x%04X\t%s\t%s\t%s %s %s\tpos %d/%d\t%s\tKIC %d\tenc %d dec %d\n",
			d.Drive, d.Address, orDash(d.Barcode), d.State, d.Personality, d.Vendor, d.Product,
			d.Position, d.Objects, key, d.KIC, d.EncMode, d.DecMode)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func move(op string, args []string) error {
	fs, socket, _ := panelFlags(op, args)
	slot := fs.Int("slot", 0, "storage slot (1-based)")
	drive := fs.Int("drive", -1, "drive number (0-based)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" || *drive < 0 || (op == "load" && *slot < 1) {
		return fmt.Errorf("%s needs --socket and --drive%s", op, map[bool]string{true: " and --slot"}[op == "load"])
	}
	p, err := emu.DialPanel(*socket)
	if err != nil {
		return err
	}
	defer p.Close()
	resp, err := p.Do(emu.PanelRequest{Op: op, Slot: *slot, Drive: *drive})
	if err != nil {
		return err
	}
	if op == "unload" {
		fmt.Printf("drive %d unloaded to slot %d\n", *drive, resp.Slot)
	} else {
		fmt.Printf("slot %d loaded into drive %d\n", *slot, *drive)
	}
	return nil
}

// panelMove moves a cartridge between two element addresses, as an
// operator would (e.g. into or out of the import/export station).
func panelMove(args []string) error {
	fs, socket, _ := panelFlags("move", args)
	from := fs.String("from", "", "source element address (0x1000 = slot 1, 0x0010 = I/E 1)")
	to := fs.String("to", "", "destination element address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err1 := strconv.ParseUint(*from, 0, 16)
	d, err2 := strconv.ParseUint(*to, 0, 16)
	if *socket == "" || err1 != nil || err2 != nil {
		return fmt.Errorf("move needs --socket, --from ADDR and --to ADDR (element addresses such as 0x1003 and 0x0010)")
	}
	p, err := emu.DialPanel(*socket)
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := p.Do(emu.PanelRequest{Op: "move", From: int(f), To: int(d)}); err != nil {
		return err
	}
	fmt.Printf("moved 0x%04X to 0x%04X\n", f, d)
	return nil
}

// fault replaces one unit's faults on a running vtl.
func fault(args []string) error {
	fs, socket, _ := panelFlags("fault", args)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" || fs.NArg() != 1 {
		return errors.New("fault needs --socket and one UNIT:KEY=VALUE[,…] or UNIT:none")
	}
	unit, f, err := emu.ParseFaults(fs.Arg(0), parseSize)
	if err != nil {
		return err
	}
	p, err := emu.DialPanel(*socket)
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := p.Do(emu.PanelRequest{Op: "fault", Unit: unit, Faults: &f}); err != nil {
		return err
	}
	fmt.Printf("%s: faults %s\n", unit, f)
	return nil
}

// stats prints the read counters (and resets them with --reset).
func stats(args []string, w io.Writer) error {
	fs, socket, _ := panelFlags("stats", args)
	reset := fs.Bool("reset", false, "start the counters again from zero (after printing them)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" || fs.NArg() != 0 {
		return errors.New("stats needs --socket (and takes only --reset and --json)")
	}
	p, err := emu.DialPanel(*socket)
	if err != nil {
		return err
	}
	defer p.Close()
	resp, err := p.Do(emu.PanelRequest{Op: "stats", Reset: *reset})
	if err != nil {
		return err
	}
	st := resp.Stats
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, d := range st.Drives {
		fmt.Fprintf(tw, "drive %d\t%s\t%d blocks\t%d bytes read\t%d flipped\n", d.Drive, orDash(d.Barcode), d.Blocks, d.Bytes, d.Flipped)
	}
	for _, c := range st.Cartridges {
		fmt.Fprintf(tw, "cartridge %s\t\t%d blocks\t%d bytes read\n", c.Barcode, c.Blocks, c.Bytes)
	}
	if *reset {
		fmt.Fprintln(tw, "counters reset")
	}
	return tw.Flush()
}

// readSecretLine reads a secret file's first line (nil for no file).
func readSecretLine(what, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return []byte(strings.TrimRight(line, "\r")), nil
}
