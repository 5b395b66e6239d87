// Package console is the console command language of Tapeward: it turns one
// line typed in tapectl (and sent to the director) into a validated Command,
// or a typed error that says what is wrong and what was probably meant. It
// does no I/O and never panics on any input (FuzzParse).
//
// # Lines
//
// A line is a command — one or two words, case-insensitive ("label", "list
// volumes") — followed by keywords in any order:
//
//	keyword=value   pool=Offsite, pool = Offsite, out="/media/usb stick/k.csv"
//	keyword         a bare flag: barcodes, encrypt, yes
//
// Keywords are case-insensitive (ASCII); values keep their case, except
// enum values (encrypt=YES is "yes"). A value may be double-quoted to hold
// spaces or '='; inside quotes \" is a quote and \\ a backslash, and any
// other backslash is an error. Unquoted, a backslash is an ordinary
// character (out=C:\keys.csv). A keyword given twice is an error. Lines are
// at most MaxLineLen bytes of UTF-8 without control characters (tab counts
// as a space); a trailing "\n" or "\r\n" is ignored. A blank line or one
// whose first non-blank character is '#' gives ErrEmpty.
//
// Like Bareos, "update volume=Vol1 encrypt=yes" uses "volume" both as the
// second command word and as a keyword: the command is "update volume" and
// Args["volume"] is "Vol1". "status storage=sd1" works the same way. The
// second command word must come right after the first; the keywords after
// it may come in any order.
//
// # Commands
//
// See Commands and Help (or "help" in tapectl) for the table:
//
//	label (slots=LIST barcodes | slot=N volume=NAME) [storage=NAME] [pool=NAME] [encrypt] [drive=N]
//	list volumes [pool=NAME] [storage=NAME]
//	list pools
//	list keyevents [volume=NAME] [limit=N]
//	list volumeevents [volume=NAME] [limit=N]
//	status director
//	status storage=NAME
//	mount storage=NAME slot=N [drive=N]
//	unmount storage=NAME drive=N
//	release storage=NAME drive=N
//	update volume=NAME (encrypt=yes|no|rotate | status=Append|Full|Used|Read-Only|Disabled|Archive|Error)
//	update pool=NAME
//	prune volume=NAME [yes]
//	purge volume=NAME [yes]
//	rekey [yes]
//	export keys out=FILE [pool=NAME]
//	shred volume=NAME [yes]
//	help [COMMAND]
//	quit              (also: exit)
//
// rekey without yes is a dry run: the director reports what it would
// rewrap and changes nothing; "rekey yes" rewraps. export keys' out= names a
// file on the console's machine: the director returns the rows and tapectl
// writes them (Command.ConsoleArgs lists such keywords). help and quit are
// console-local (Command.Local).
//
// # Roles
//
// Each console the director admits has a role (Role): read (list, status,
// help), operator (read + label, mount, unmount, release, update pool,
// update volume … status=, prune volume, purge volume) or keyadmin
// (operator + export keys, rekey, shred volume, update volume … encrypt=). The table in
// roles.go says which role each command needs, and which keywords need a
// higher one; Permit applies it and HelpFor shows a console only what it
// may run.
//
// Adding a command is adding one Spec to the table in table.go and its
// role to the table in roles.go (a test refuses a command without one);
// usage lines, help text, validation and suggestions follow from it.
package console
