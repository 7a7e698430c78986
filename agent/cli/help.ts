export const helpText = `ctrvol: puts containerd's store on its own volume, keeping the AMI's cached images

Usage: ctrvol <command> [options]

Commands:
  setup     find, format (only if blank), fill and mount the containerd volume
  status    what was set up, from which device, and how full it is
  verify    after containerd starts: its sandbox image is there and pinned, or is
            imported from containerd.sandboxImageArchive and pinned
  prune     remove unused images, least recently used first, down to a target
  monitor   watch the root and the volume on a schedule: warn, prune, grow, metrics
  check     node-problem-detector plugin: exit 0 healthy, 1 a problem, 2 cannot tell

Options for every command:
  --config FILE        config file (default: /etc/ctrvol/config.yaml, below --root)
  --root DIR           prefix for every system file ctrvol writes (tests only; default /)
  --log-format FORMAT  text (default; journald priorities under systemd) or json
  -v, --verbose        log every command ctrvol runs
  -h, --help           this text
  --version            the version

setup:
  --dry-run            print the plan; change nothing
  --verify MODE        metadata (default) or content: also compare file hashes after the copy

status:
  --json               machine-readable output

prune:
  --dry-run            print the ordered plan and what is kept, and why; change nothing
  --target-percent N   usage to prune down to (default: prune.lowPercent)

monitor:
  --once               run one tick and exit
  --ticks N            run N ticks back to back, then print their CPU and memory cost

Exit codes (check has its own: 0 healthy, 1 a problem, 2 cannot tell):
  0  ok
  1  a step failed while acting
  2  usage or config error (nothing was changed)
  3  environment: device missing, foreign or in use, not root, a tool missing,
     containerd still running (nothing was changed)
`;
