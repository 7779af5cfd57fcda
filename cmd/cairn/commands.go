package main

import "github.com/spf13/cobra"

// subcommands returns cairn's commands, run on e. Cobra lists them by
// name in the help, with its own help and completion commands.
func subcommands(e *env) []*cobra.Command {
	return []*cobra.Command{
		newDemoCmd(e),
		newExportCmd(e),
		newGCCmd(e),
		newImportCmd(e),
		newKeyringCmd(e),
		newLsCmd(e),
		newReconcileCmd(e),
		newReindexCmd(e),
		newRekeyCmd(e),
		newRmCmd(e),
		newShowCmd(e),
		newVerifyCmd(e),
		newVersionCmd(e),
	}
}
