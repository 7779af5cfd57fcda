package main

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// globalFlags are the flags every command takes: persistent flags of the
// root command, so they may come anywhere on the command line.
type globalFlags struct {
	store   string
	keyring string
	offload string
	json    bool
	debug   bool
	timeout timeoutFlag
}

// newRoot returns the command tree of one command line run on e. Help
// (cairn help CMD, cairn CMD --help) goes to stdout, errors to run, which
// prints them on one line: cobra prints neither usage nor errors itself.
func newRoot(e *env) *cobra.Command {
	e.keyring = &keyringOnce{}
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Inspect, repair and migrate a Cairn checkpoint store, or run its demo",
		Long: "cairn runs a demo workflow on a checkpoint store and gives operators the commands to\n" +
			"inspect, repair and migrate one. Flags may come before or after the arguments.\n\n" +
			"Exit codes: 0 success, 1 failure (a timeout or a permission error included), 2 usage error,\n" +
			"3 a run not found, 130 interrupted by SIGINT, 143 stopped by SIGTERM.",
		Version:       buildVersion(),
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		// No command: the help. An argument that names no command: a
		// usage error with the commands it may be a typo of.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return unknownCommand(cmd, "command", args[0])
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if e.flags.json && cmd.Annotations[annotationNoJSON] != "" {
				return usagef("%s has no --json output", cmd.Name())
			}
			if e.flags.debug {
				e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if d := e.flags.timeout.d; d > 0 && e.setTimeout != nil {
				e.setTimeout(d)
			}
			e.started = true
			e.log.Debug("command", "path", cmd.CommandPath())
			return nil
		},
	}
	root.SuggestionsMinimumDistance = 2
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetIn(e.stdin)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%v (run %s --help)", err, cmd.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&e.flags.store, "store", "", "store URL: file://DIR, mem:// or s3://bucket/prefix?endpoint=…&region=… (default $CAIRN_STORE, else "+defaultStoreHint+")")
	pf.StringVar(&e.flags.keyring, "keyring", "", "keyring file that seals the store's objects (default $CAIRN_KEYRING; none: not sealed; see cairn keyring)")
	pf.StringVar(&e.flags.offload, "offload", "", "store state values at least this large once, as content-addressed blobs: on (64KiB), off, or a size (default $CAIRN_OFFLOAD, else off)")
	pf.BoolVar(&e.flags.json, "json", false, "print one JSON document on stdout instead of text (no progress bar)")
	pf.BoolVar(&e.flags.debug, "debug", false, "log what the command and the store do on stderr, at debug level")
	pf.Var(&e.flags.timeout, "timeout", "deadline of the whole command, such as 30s or 10m (default none)")
	// Cobra's own --version would take -v too; cairn keeps one-letter
	// flags to -h (see longFlags).
	root.Flags().Bool("version", false, "print the version of cairn")
	root.AddCommand(subcommands(e)...)
	// Cobra adds its help and completion commands when it executes; here
	// already, so that run finds them (naming a failed command) and so
	// that completion refuses a shell it does not know.
	root.SetHelpCommand(newHelpCmd(root))
	root.InitDefaultHelpFlag() // so that Find reads --help as a bool: cairn --help ls
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					var shells []string
					for _, sh := range cmd.Commands() {
						shells = append(shells, sh.Name())
					}
					return usagef("unknown shell %q (want %s)", args[0], strings.Join(shells, ", "))
				}
				return cmd.Help()
			}
		}
	}
	return root
}

// annotationNoJSON marks a command that refuses --json: its output is a
// report for a person only.
const annotationNoJSON = "cairn/no-json"

// newHelpCmd is `cairn help [COMMAND]`: the help of a command on stdout,
// or a usage error, with suggestions, for a command that does not exist.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "help about any command",
		ValidArgsFunction: func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, c := range root.Commands() {
				if c.IsAvailableCommand() && strings.HasPrefix(c.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(c.Name(), c.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil {
				return usagef("%v", err)
			}
			if len(rest) > 0 {
				return unknownCommand(target, "help topic", rest[0])
			}
			target.InitDefaultHelpFlag() // listed, as in CMD --help
			return target.Help()
		},
	}
}

// unknownCommand is the usage error of a command name that parent does
// not have, naming those it may be a typo of.
func unknownCommand(parent *cobra.Command, what, name string) error {
	hint := ""
	parent.SuggestionsMinimumDistance = parent.Root().SuggestionsMinimumDistance
	if s := parent.SuggestionsFor(name); len(s) > 0 {
		hint = "did you mean " + strings.Join(s, " or ") + "? "
	}
	return usagef("unknown %s %q (%srun %s help)", what, name, hint, parent.Root().Name())
}

// Argument checks: each failure is a usage error naming the command.

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (run %s --help)", args[0], cmd.CommandPath())
	}
	return nil
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("missing argument (run %s --help)", cmd.CommandPath())
		}
		return nil
	}
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("missing argument (run %s --help)", cmd.CommandPath())
		}
		if len(args) > n {
			return usagef("unexpected argument %q (run %s --help)", args[n], cmd.CommandPath())
		}
		return nil
	}
}

// timeoutFlag is --timeout: a positive duration.
type timeoutFlag struct{ d time.Duration }

func (f *timeoutFlag) String() string {
	if f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f *timeoutFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration such as 30s or 10m")
	}
	f.d = d
	return nil
}

func (f *timeoutFlag) Type() string { return "duration" }

// singleDash is a long flag spelled with one dash, as Go's flag package
// (cairn's before cobra) took it: -store, -limit=5.
var singleDash = regexp.MustCompile(`^-([a-z][a-z0-9-]+)(=.*)?$`)

// longFlags rewrites the single-dash long flags of args (-store URL,
// -json, -limit=5) to their double-dash form, which is all pflag takes.
// It is unambiguous: cairn defines no one-letter flag but -h, so a
// single-dash word that names a long flag can mean nothing else (pflag
// would refuse it as a cluster of unknown one-letter flags). A
// single-dash word that names no flag is left for pflag to refuse. A flag's
// value is left alone (--workflow -json keeps "-json"), and so is
// everything after "--".
func longFlags(root *cobra.Command, args []string) []string {
	kinds := flagKinds(root)
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		name, hasValue := "", false
		switch m := singleDash.FindStringSubmatch(a); {
		case strings.HasPrefix(a, "--"):
			name, _, hasValue = strings.Cut(a[2:], "=")
		case m != nil:
			if _, known := kinds[m[1]]; !known {
				continue
			}
			out[i] = "-" + a
			name, hasValue = m[1], m[2] != ""
		default:
			continue
		}
		if takesValue, known := kinds[name]; known && takesValue && !hasValue {
			i++ // its value
		}
	}
	return out
}

// flagKinds returns every long flag of the command tree, with whether it
// takes a value (a bool flag does not). A name has one kind in every
// command (TestFlagKinds checks it).
func flagKinds(root *cobra.Command) map[string]bool {
	kinds := map[string]bool{"help": false, "version": false}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { kinds[f.Name] = f.NoOptDefVal == "" }
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return kinds
}

// commandStarted returns err as run reports it: an error cobra reported
// before the command started (a bad argument to one of its own commands,
// such as completion) is a usage error; the command's own errors are as
// they are.
func commandStarted(e *env, err error) error {
	if err == nil || e.started || errors.As(err, new(*usageError)) {
		return err
	}
	return &usageError{fmt.Sprint(err)}
}
