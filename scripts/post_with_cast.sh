#!/usr/bin/env bash
# Post a job with nothing but Foundry's `cast` and the deployment file: what any Ethereum client
# does to use the market (approve the escrow, reward + fee + audit fee, then postJob with the spec
# bytes and its keccak256).
#
#   RPC_URL=http://127.0.0.1:8545 DEPLOYMENT=.devnet/deployments/31337.json \
#   PRIVATE_KEY=0x...  scripts/post_with_cast.sh spec.json 1 [CHALLENGE_WINDOW_SECONDS]
#
# SPEC_FILE holds the canonical spec bytes (RFC 8785 / JCS: `depin job post --dry-run` prints them,
# or see "Job spec" in the README; non-canonical bytes are never run); REWARD is in tokens. Sign
# with PRIVATE_KEY (a devnet key: it ends up on cast's command line) or, on a testnet,
# CAST_ACCOUNT=<name of a cast keystore>. Prints the new job id; exits 1 with one `error:` line
# (after cast's own message) when any step fails.
#
# cast is tools/cast (the real binary npm installed, with its exit status) unless $CAST names
# another: npm's node_modules/.bin/cast launcher exits 0 even when cast fails.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
CAST=${CAST:-$here/../tools/cast}
spec_file=${1:?usage: post_with_cast.sh SPEC_FILE REWARD_TOKENS [CHALLENGE_WINDOW]}
reward_tokens=${2:?usage: post_with_cast.sh SPEC_FILE REWARD_TOKENS [CHALLENGE_WINDOW]}
challenge_window=${3:-10}
: "${RPC_URL:?set RPC_URL}" "${DEPLOYMENT:?set DEPLOYMENT (deployments/<chainId>.json)}"
if [ -n "${CAST_ACCOUNT:-}" ]; then signer=(--account "$CAST_ACCOUNT"); else signer=(--private-key "${PRIVATE_KEY:?set PRIVATE_KEY or CAST_ACCOUNT}"); fi

fail() { echo "error: $*" >&2; exit 1; }
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: d=d[k]
print(d)' "$@"; }
[ -f "$spec_file" ] || fail "spec file $spec_file not found"
market=$(field "$DEPLOYMENT" addresses JobMarket) || fail "$DEPLOYMENT is not a deployment file (no addresses.JobMarket)"
token=$(field "$DEPLOYMENT" addresses RewardToken) || fail "$DEPLOYMENT is not a deployment file (no addresses.RewardToken)"
spec=$(cat "$spec_file")
max_runtime=$(field "$spec_file" resources max_runtime) || fail "$spec_file has no resources.max_runtime"
submit_window=$(( max_runtime + 120 ))  # JobTerms.maxRuntime: the run + 120 s to fetch, archive, submit
cpu_seconds=$(python3 -c 'import json,math,sys; r=json.load(open(sys.argv[1]))["resources"]; print(max(1, math.ceil(r["cpus"]*r["max_runtime"])))' "$spec_file") \
  || fail "$spec_file has no resources.cpus"
reward=$("$CAST" to-wei "$reward_tokens") || fail "bad reward $reward_tokens (a number of tokens, e.g. 1.5)"
spec_hash=$("$CAST" keccak "$spec") || fail "cast keccak failed"
spec_hex=$("$CAST" from-utf8 "$spec") || fail "cast from-utf8 failed"

# The escrow: R + f*R + A, with f = feeBps and A = auditFeeBps (re-execution audits, verifyMode 0)
# of the current MarketParams (fields 10 and 12 of params()).
params=$("$CAST" call --rpc-url "$RPC_URL" "$market" \
  'params()((uint24,uint24,uint24,uint24,uint24,uint24,uint16,uint16,uint16,uint16,uint16,uint16,uint16,uint16,uint16,address,bool))') \
  || fail "the market's parameters could not be read (cast's reason above)"
escrow=$(python3 -c 'import sys; v=[x.split()[0] for x in sys.argv[1].strip().strip("()").split(",")]; r=int(sys.argv[2])
print(r + r * int(v[9]) // 10000 + r * int(v[11]) // 10000)' "$params" "$reward") || fail "unreadable market parameters: $params"
# JobTerms: (reward, claimWindow, maxRuntime = submit window, challengeWindow, collateralPct, cpuSeconds, verifyMode)
terms="($reward,3600,$submit_window,$challenge_window,400,$cpu_seconds,0)"
"$CAST" send --rpc-url "$RPC_URL" "${signer[@]}" "$token" 'approve(address,uint256)' "$market" "$escrow" >/dev/null \
  || fail "approve was not sent or reverted (cast's reason above)"
receipt=$("$CAST" send --json --rpc-url "$RPC_URL" "${signer[@]}" "$market" \
  'postJob(bytes32,bytes,(uint96,uint32,uint24,uint24,uint16,uint32,uint8))' "$spec_hash" "$spec_hex" "$terms") \
  || fail "postJob was not sent (cast's reason above; \`cast decode-error <data>\` names a custom error)"
# The job id is the first indexed topic of the JobPosted event in the receipt.
posted=$("$CAST" sig-event 'JobPosted(uint256,address,bytes32,(uint96,uint32,uint24,uint24,uint16,uint32,uint8),uint96,uint16,uint32,bytes)')
python3 -c 'import json,sys; r=json.loads(sys.argv[1])
if r["status"] not in ("0x1", 1): sys.exit("error: postJob reverted in transaction " + r["transactionHash"])
print(next(int(l["topics"][1],16) for l in r["logs"] if l["topics"][0]==sys.argv[2]))' "$receipt" "$posted"
