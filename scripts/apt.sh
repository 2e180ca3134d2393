# shellcheck shell=bash
# Installing Debian packages on any machine of the image: sourced by every installer of the repo
# (.ci/run, scripts/mkrootfs.sh, tests/cgroup2/run.sh, tests/clients/run.sh, bench/run.sh).
#
#   . scripts/apt.sh
#   apt_install [--no-install-recommends] PKG...   installs what is missing; 0 or 1
#
# The image may carry packages from <codename>-backports (qemu-utils 10) without listing that
# source. apt then either removes them to install their family at the distribution's version
# (no backports source) or stops with "pkgProblemResolver::Resolve generated breaks" (backports
# listed at its default priority 100). So the install is decided from what is installed, and
# every plan is simulated first; one that would remove an installed package is not taken:
#
#   A. the packages as named;
#   B. the packages whose source package has a backports version installed (the family: qemu for
#      qemu-utils) taken from <codename>-backports (-t, so their dependencies come along), the
#      rest as named in a second transaction. Where that source
#      is not listed, a private copy of the machine's sources plus backports is used for this one
#      install (its own lists dir under /var/cache; the distribution's sources files are never
#      edited);
#   C. the family's installed backports packages moved to the distribution's version
#      (PKG/<codename>, --allow-downgrades), the packages at the distribution's version.
#
# What apt said for every plan tried is printed when none works. APT_LOG (default: a temp file)
# collects apt's output. Nothing here depends on the caller's set -e/-u.

APT_SH_UPDATED=
APT_PRIVATE=()

apt_say() { printf 'apt-install: %s\n' "$*" >&2; }

# Installed (status "install ok installed"), of any version.
apt_installed() {
	dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

apt_codename() {
	local c=
	[ -r /etc/os-release ] && c=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$c" ] || c=$(lsb_release -sc 2>/dev/null || true)
	echo "$c"
}

apt_log() {
	[ -n "${APT_LOG:-}" ] || APT_LOG=$(mktemp -p /tmp apt-install.XXXXXXXX.log)
	echo "$APT_LOG"
}

apt_update_once() {
	[ -n "$APT_SH_UPDATED" ] && return 0
	apt_say "apt-get update"
	if ! apt-get update -qq >"$(apt_log)" 2>&1; then
		apt_say "apt-get update failed:"
		sed 's/^/  /' "$(apt_log)" >&2
		return 1
	fi
	APT_SH_UPDATED=1
}

# Installed packages whose version comes from backports: "pkg source" per line.
apt_backported() {
	dpkg-query -W -f '${db:Status-Status} ${Package} ${Version} ${source:Package}\n' 2>/dev/null |
		awk '$1 == "installed" && $3 ~ /~bpo[0-9]/ { print $2, $4 }'
}

# The source package of a package's candidate version (the package's own name if it has none).
apt_source_of() {
	local s
	s=$(apt-cache "${APT_PRIVATE[@]}" show --no-all-versions "$1" 2>/dev/null |
		awk -F': ' '$1 == "Source" { split($2, a, " "); print a[1]; exit }')
	echo "${s:-$1}"
}

# Is SUITE a release apt knows (listed in a source the machine has)?
apt_has_suite() {
	apt-cache "${APT_PRIVATE[@]}" policy 2>/dev/null | grep -Eq "(a|n)=$1(,|$)"
}

# Make APT_PRIVATE: the machine's sources plus SUITE, with private lists, for this install only.
apt_private_backports() {
	local suite=$1 dir=/var/cache/rrun-apt
	local uri
	uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
		/etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security |
		sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//' | awk '{ print $1; exit }') || true
	[ -n "$uri" ] || {
		apt_say "no Debian mirror found in the machine's apt sources"
		return 1
	}
	rm -rf "$dir/parts"
	mkdir -p "$dir/parts" "$dir/lists/partial"
	cp /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list "$dir/parts/" 2>/dev/null || true
	if [ -f /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$dir/parts/machine.list"; fi
	printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$uri" "$suite" >"$dir/parts/rrun-backports.sources"
	APT_PRIVATE=(-o "Dir::Etc::SourceParts=$dir/parts" -o Dir::Etc::SourceList=/dev/null
		-o "Dir::State::Lists=$dir/lists")
	apt_say "$suite is not in the machine's sources: using $uri $suite for this install only ($dir)"
	if ! apt-get "${APT_PRIVATE[@]}" update -qq >"$(apt_log)" 2>&1; then
		apt_say "apt-get update with $suite failed:"
		sed 's/^/  /' "$(apt_log)" >&2
		APT_PRIVATE=()
		return 1
	fi
}

# Try one plan: simulate, refuse removals, then install. Records the failure in APT_TRIED.
apt_try() {
	local what=$1
	shift
	local sim rc=0
	sim=$(apt-get "${APT_PRIVATE[@]}" -s install -y "$@" 2>&1) || rc=$?
	local removes=
	removes=$(printf '%s\n' "$sim" | awk '/^Remv / { print $2 }' | tr '\n' ' ')
	if [ $rc -ne 0 ] || [ -n "$removes" ]; then
		APT_TRIED+=("plan $what: apt-get install $*")
		if [ -n "$removes" ]; then
			APT_TRIED+=("  would remove installed packages: $removes")
		else
			APT_TRIED+=("$(printf '%s\n' "$sim" | grep -vE '^(Inst|Conf|Reading|Building) ' | tail -n 25 | sed 's/^/  /')")
		fi
		return 1
	fi
	apt_say "plan $what: apt-get install $*"
	[ -n "${APT_DRY:-}" ] && return 0
	if ! DEBIAN_FRONTEND=noninteractive apt-get "${APT_PRIVATE[@]}" install -y -q "$@" >"$(apt_log)" 2>&1; then
		APT_TRIED+=("plan $what: apt-get install $* (the simulation passed, the install failed)")
		APT_TRIED+=("$(tail -n 25 "$(apt_log)" | sed 's/^/  /')")
		return 1
	fi
}

apt_install() {
	local opts=() pkgs=() p
	for p; do
		case $p in
		-*) opts+=("$p") ;;
		*) apt_installed "$p" || pkgs+=("$p") ;;
		esac
	done
	[ ${#pkgs[@]} -eq 0 ] && return 0
	apt_update_once || return 1
	APT_TRIED=()
	APT_PRIVATE=()
	apt_say "installing ${pkgs[*]}"

	# A: as named.
	apt_try A "${opts[@]}" "${pkgs[@]}" && return 0

	local codename suite
	codename=$(apt_codename)
	suite=$codename-backports
	local bpo
	bpo=$(apt_backported)
	if [ -n "$codename" ] && [ -n "$bpo" ]; then
		apt_say "installed from $suite: $(echo "$bpo" | awk '{ print $1 }' | tr '\n' ' ')"
		# The families of the requested packages that have a backported member installed.
		local families=" " fam=() rest=() src
		for p in "${pkgs[@]}"; do
			src=$(apt_source_of "$p")
			if echo "$bpo" | awk -v s="$src" '$2 == s { f = 1 } END { exit !f }'; then
				fam+=("$p")
				families+="$src "
			else
				rest+=("$p")
			fi
		done
		if [ "$families" = " " ]; then
			apt_say "none of ${pkgs[*]} is of a backported family"
		else
			# B: the family from backports.
			if apt_has_suite "$suite" || apt_private_backports "$suite"; then
				if apt_try B "${opts[@]}" -t "$suite" "${fam[@]}"; then
					[ ${#rest[@]} -eq 0 ] && return 0
					APT_PRIVATE=()
					apt_try "B (the rest)" "${opts[@]}" "${rest[@]}" && return 0
				fi
			fi
			APT_PRIVATE=()
			# C: the family's backported members at the distribution's version.
			local c=("${pkgs[@]}")
			while read -r p src; do
				[[ $families == *" $src "* ]] && c+=("$p/$codename")
			done <<<"$bpo"
			apt_try C "${opts[@]}" --allow-downgrades "${c[@]}" && return 0
		fi
	fi
	apt_say "could not install ${pkgs[*]}; the plans tried and what apt said:"
	printf '%s\n' "${APT_TRIED[@]}" >&2
	return 1
}
