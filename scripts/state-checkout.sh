# Sourced (`. scripts/state-checkout.sh`) by the workflows and the action: checks out the state's
# branch of this checkout's `origin` into a repository of its own and exports
# BACKFILL_STATE_DIR (the state in it) and BACKFILL_STATE_MISSING (true when the branch does
# not exist yet: the checkout is then empty, ready for `backfill init --state-branch`).
#
#   STATE_BRANCH    the branch (default backfill-state)
#   STATE_CHECKOUT  where (default $RUNNER_TEMP/backfill-state)
#   GH_TOKEN        optional: the token git fetches and pushes with, in this shell only (the
#                   checkout keeps no credentials on disk)
#   SERVER_URL      the GitHub server the token is for (default https://github.com)

STATE_BRANCH="${STATE_BRANCH:-backfill-state}"
STATE_CHECKOUT="${STATE_CHECKOUT:-$RUNNER_TEMP/backfill-state}"
export STATE_BRANCH STATE_CHECKOUT

if [ -n "${GH_TOKEN:-}" ]; then
  backfill_basic=$(printf 'x-access-token:%s' "$GH_TOKEN" | base64 | tr -d '\n')
  echo "::add-mask::$backfill_basic"
  export GIT_CONFIG_COUNT=1
  export GIT_CONFIG_KEY_0="http.${SERVER_URL:-https://github.com}/.extraheader"
  export GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $backfill_basic"
  unset backfill_basic
fi

backfill_origin=$(git remote get-url origin)
git init --quiet "$STATE_CHECKOUT"
git -C "$STATE_CHECKOUT" remote add origin "$backfill_origin"
unset backfill_origin
# 0: the branch exists, 2: the remote said it has none; anything else is a failure to ask.
backfill_found=0
git -C "$STATE_CHECKOUT" ls-remote --exit-code --heads origin "refs/heads/$STATE_BRANCH" \
  >/dev/null || backfill_found=$?
case "$backfill_found" in
  0)
    git -C "$STATE_CHECKOUT" fetch --quiet --no-tags origin \
      "+refs/heads/$STATE_BRANCH:refs/remotes/origin/$STATE_BRANCH"
    git -C "$STATE_CHECKOUT" checkout --quiet --detach "refs/remotes/origin/$STATE_BRANCH"
    BACKFILL_STATE_MISSING=false
    echo "The state: $STATE_BRANCH at $(git -C "$STATE_CHECKOUT" rev-parse HEAD)."
    ;;
  2)
    git -C "$STATE_CHECKOUT" checkout --quiet --orphan "$STATE_BRANCH"
    BACKFILL_STATE_MISSING=true
    echo "::warning::origin has no branch $STATE_BRANCH yet: no state was started (run the apply workflow once with the operation init)"
    ;;
  *)
    echo "::error::cannot ask origin for the branch $STATE_BRANCH (git exit $backfill_found)"
    exit 1
    ;;
esac
unset backfill_found
BACKFILL_STATE_DIR="$STATE_CHECKOUT/state"
export BACKFILL_STATE_DIR BACKFILL_STATE_MISSING
