#!/bin/sh
# Deploy the simulated two-node `local` stack from a fresh clone, on a machine with the Pulumi CLI:
# the venv, Docker, the simulator image and fake hosts, a state backend, the stack, then `pulumi up`.
# Arguments go to `pulumi up` (e.g. --yes). Without the CLI, `make test` deploys the same
# simulated cluster in its integration test.
set -eu
cd "$(dirname "$0")/.."

if ! command -v pulumi >/dev/null 2>&1; then
    echo "up-local: the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/)." >&2
    echo "up-local: without it, 'make test' runs the program under mocks and the simulated cluster in its integration test." >&2
    exit 127
fi

make local-hosts

# A backend the user already chose (pulumi login, PULUMI_BACKEND_URL) is kept; otherwise state
# goes to ~/.pulumi on this machine.
if ! pulumi whoami --non-interactive >/dev/null 2>&1; then
    pulumi login --local
fi

# The local stack holds no secret: its passphrase is empty, set for these commands only, so a
# passphrase exported for other stacks is neither needed nor used here.
local_stack() {
    env -u PULUMI_CONFIG_PASSPHRASE_FILE PULUMI_CONFIG_PASSPHRASE= pulumi "$@"
}
local_stack stack select --create --non-interactive local
local_stack up --stack local "$@"
