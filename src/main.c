/* certherd — entry point: everything is a command of cli/. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
