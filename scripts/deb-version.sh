#!/usr/bin/env bash
# Maps the output of `git describe --tags --always --dirty` to a valid Debian version (deb-version(7)),
# ordered the way the builds were made:
#
#   v1.2.3                      -> 1.2.3
#   v1.2.3-rc1                  -> 1.2.3~rc1          (a pre-release sorts before 1.2.3)
#   v1.2.3-4-g0e62b1f           -> 1.2.3+git4.0e62b1f (4 commits after the tag, after 1.2.3)
#   v1.2.3-4-g0e62b1f-dirty     -> 1.2.3+git4.0e62b1f.dirty
#   0e62b1f                     -> 0.0.0~git96.0e62b1f (no tag yet: before any 0.0.0 release)
#   0e62b1f-dirty               -> 0.0.0~git96.0e62b1f.dirty
#   0.0.0-dev                   -> 0.0.0~dev          (the Makefile's fallback outside git)
#
# Without a tag, git describe gives only the abbreviated hash, and hashes do not sort in the order of
# the commits: the number of commits up to it (96 above, git rev-list --count) goes first, so that each
# snapshot is an upgrade of the one before.
#
# A hyphen would start a Debian revision, so none is left in the result; the version must start with
# a digit. Usage: deb-version.sh [DESCRIBE [COMMITS]] (default: git describe of the working tree);
# COMMITS is the commit count of an untagged DESCRIBE, by default git rev-list --count of its hash in
# this repository. Exit 1 when the input cannot be mapped.
set -euo pipefail

describe=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)}
commits=${2:-}

dirty=
if [[ $describe == *-dirty ]]; then
	dirty=.dirty
	describe=${describe%-dirty}
fi

hex='[0-9a-f]{7,40}'
tag='v?([0-9][0-9A-Za-z.+~]*)(-([A-Za-z][0-9A-Za-z.]*))?'
if [[ $describe =~ ^(${hex})$ ]]; then
	# No tag: only the abbreviated hash (checked first: a hash may start with a digit).
	hash=${BASH_REMATCH[1]}
	if [[ -z $commits ]] && ! commits=$(git rev-list --count "$hash" -- 2>/dev/null); then
		echo "deb-version: no commit count for '$hash' (not a commit of this repository): pass it as COMMITS" >&2
		exit 1
	fi
	if ! [[ $commits =~ ^[0-9]+$ ]]; then
		echo "deb-version: commit count '$commits' is not a number" >&2
		exit 1
	fi
	version="0.0.0~git${commits}.${hash}${dirty}"
elif [[ $describe =~ ^${tag}-([0-9]+)-g(${hex})$ ]]; then
	# A tag, N commits and the abbreviated hash.
	base=${BASH_REMATCH[1]}
	[[ -n ${BASH_REMATCH[3]} ]] && base+="~${BASH_REMATCH[3]}"
	version="${base}+git${BASH_REMATCH[4]}.${BASH_REMATCH[5]}${dirty}"
elif [[ $describe =~ ^${tag}$ ]]; then
	base=${BASH_REMATCH[1]}
	[[ -n ${BASH_REMATCH[3]} ]] && base+="~${BASH_REMATCH[3]}"
	version="${base}${dirty:++${dirty#.}}"
else
	echo "deb-version: cannot map '$describe' to a Debian version" >&2
	exit 1
fi

# deb-version(7): upstream version of digits, letters and . + ~, starting with a digit.
if ! [[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]]; then
	echo "deb-version: '$version' (from '$describe') is not a valid Debian version" >&2
	exit 1
fi
echo "$version"
