#!/usr/bin/env bash
# docker/build-test.sh: prove docker/Dockerfile builds, without a registry or a
# Docker engine (as root, on Debian 12).
#
#   1. packages      apt-get install podman, debootstrap, docker-compose (if missing)
#   2. base-rootfs   debootstrap --variant=minbase bookworm from the Debian mirror
#                    apt uses here; cached as a tarball in /var/cache/portier-build-test/
#   3. base-import   podman import: localhost/bookworm-base (as debian:bookworm) and
#                    localhost/bookworm-slim-base (docs, man pages and locales left
#                    out, as debian:bookworm-slim)
#   4. image-build   podman build --isolation=chroot --format docker with those bases
#   5. image-config  the built image's user, volumes, ports, stop signal, healthcheck
#   6. image-files   podman create + podman mount, then chroot into the image's files:
#                    portier --version, portier --check -c /etc/portier/portier.json,
#                    portierctl --help, no missing libraries, the file capability
#   7. image-smoke   in a private network namespace, the image's entry point as the
#                    image's user (10001): seeds the tenants, binds 80 and 443 through
#                    the file capability, answers the HEALTHCHECK command
#                    (portierctl status), and exits 0 on SIGTERM
#   8. image-size    the image's size
#   9. compose       docker-compose -f docker/compose.yml config -q
#  10. lint          a Dockerfile linter from Debian, if there is one
#
# (podman run is not used: it fails on machines whose sandbox refuses the
# container's rlimits.) A step that fails is named with its log; the steps
# that needed it are skipped and the independent ones still run. The exit
# code is 1 when any step failed. Everything it keeps is in
# /var/cache/portier-build-test/: the rootfs tarball, logs/, and storage/
# (podman's store for these images: the bases, the image, the build stage as
# a layer cache); rm -r that directory to reclaim the space.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=/var/cache/portier-build-test
LOGS=$CACHE/logs
IMAGE=localhost/portier:build-test
BASE_IMAGE=localhost/bookworm-base
SLIM_IMAGE=localhost/bookworm-slim-base
# podman keeps this script's images in a store of its own, beside the cached
# rootfs, so that pruning old build layers touches nobody else's images:
#   podman --root /var/cache/portier-build-test/storage images
PODMAN=(podman --root "$CACHE/storage" --runroot /run/portier-build-test)

mkdir -p "$CACHE" "$LOGS"
WORK=$(mktemp -d /var/tmp/portier-build-test.XXXXXX)
CID=""
MNT=""
MOUNTED=()

declare -a NAMES=() RESULTS=()
declare -A STATUS=()

# result STEP ok|FAIL|SKIP TEXT: record and print a step's outcome.
result() {
	NAMES+=("$1")
	STATUS[$1]=$2
	RESULTS+=("$(printf '%-13s %-4s %s' "$1" "$2" "$3")")
	printf '== %s: %s %s\n' "$1" "$2" "$3"
}

# needs STEP DEP...: true when every DEP passed; else records STEP as skipped.
needs() {
	local step=$1 dep
	shift
	for dep in "$@"; do
		if [ "${STATUS[$dep]:-}" != ok ]; then
			result "$step" SKIP "(needs $dep, which did not pass)"
			return 1
		fi
	done
	return 0
}

# logged STEP CMD...: run CMD with its output in $LOGS/STEP.log; on failure
# print the log's tail.
logged() {
	local step=$1
	shift
	local rc=0
	"$@" >"$LOGS/$step.log" 2>&1 || rc=$?
	[ $rc -eq 0 ] && return 0
	echo "-- $step: '$*' exited $rc; last lines of $LOGS/$step.log:"
	tail -n 25 "$LOGS/$step.log" | sed 's/^/   | /'
	return $rc
}

# unmount_under DIR: unmount everything mounted at or below DIR (deepest first).
unmount_under() {
	local dir=$1 m
	[ -d "$dir" ] || return 0
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
}

cleanup() {
	local m
	for m in "${MOUNTED[@]}"; do umount -l "$m" 2>/dev/null; done
	if [ -n "$CID" ]; then
		"${PODMAN[@]}" umount "$CID" >/dev/null 2>&1
		"${PODMAN[@]}" rm -f -v "$CID" >/dev/null 2>&1
	fi
	unmount_under "$WORK"
	if awk -v d="$WORK" 'index($5, d "/") == 1 || $5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		echo "build-test: $WORK still has mounts below it; left in place" >&2
	else
		rm -rf --one-file-system "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- 1. packages
step_packages() {
	local want=(podman debootstrap docker-compose libcap2-bin iproute2) missing=() p
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		result packages ok "(podman $(podman --version | awk '{print $3}'), debootstrap, docker-compose already installed)"
		return
	fi
	export DEBIAN_FRONTEND=noninteractive
	if logged packages sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends ${missing[*]}"; then
		result packages ok "(installed: ${missing[*]})"
	else
		result packages FAIL "(apt-get install ${missing[*]}; log $LOGS/packages.log)"
	fi
}

# ------------------------------------------------------------- 2. base rootfs
# apt_mirror: the Debian mirror apt uses for bookworm here (deb822 .sources
# or one-line .list), else deb.debian.org.
apt_mirror() {
	local m="" f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		m=$(awk '
			function check() { if (suites ~ /(^| )bookworm( |$)/ && uris != "") { print uris; found = 1; exit } }
			/^[ \t]*$/ { check(); uris = ""; suites = ""; next }
			/^URIs:/ { uris = $2 }
			/^Suites:/ { $1 = ""; suites = $0 " " }
			END { if (!found) check() }
		' "$f")
		[ -n "$m" ] && break
	done
	if [ -z "$m" ]; then
		m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			sed -E 's/\[[^]]*\]//' | awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }')
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

ROOTFS_TAR=$CACHE/bookworm-minbase.tar
step_base_rootfs() {
	needs base-rootfs packages || return
	if [ -s "$ROOTFS_TAR" ]; then
		result base-rootfs ok "(cached $ROOTFS_TAR, $(du -h "$ROOTFS_TAR" | cut -f1), from $(date -r "$ROOTFS_TAR" +%F))"
		return
	fi
	local mirror rootfs=$WORK/rootfs
	mirror=$(apt_mirror)
	echo "-- debootstrap --variant=minbase bookworm from $mirror (a few minutes)"
	if ! logged base-rootfs debootstrap --variant=minbase bookworm "$rootfs" "$mirror"; then
		result base-rootfs FAIL "(debootstrap --variant=minbase bookworm $mirror; log $LOGS/base-rootfs.log)"
		return
	fi
	unmount_under "$rootfs"
	if awk -v d="$rootfs" 'index($5, d "/") == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		result base-rootfs FAIL "(debootstrap left mounts under $rootfs that could not be unmounted)"
		return
	fi
	# apt sources as in Debian's own images: the release, its updates and security.
	rm -f "$rootfs/etc/apt/sources.list"
	cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $mirror
		Suites: bookworm bookworm-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: ${mirror%/debian}/debian-security
		Suites: bookworm-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/dev/* \
		"$rootfs"/proc/* "$rootfs"/sys/* "$rootfs"/tmp/* "$rootfs"/var/log/*.log
	if tar --numeric-owner --xattrs -C "$rootfs" -cf "$ROOTFS_TAR.part" . 2>"$LOGS/base-rootfs-tar.log" &&
		mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"; then
		result base-rootfs ok "(debootstrap from $mirror, $(du -h "$ROOTFS_TAR" | cut -f1), cached in $ROOTFS_TAR)"
	else
		rm -f "$ROOTFS_TAR.part"
		result base-rootfs FAIL "(tar of the rootfs; log $LOGS/base-rootfs-tar.log)"
	fi
}

# ------------------------------------------------------------- 3. base import
# Both bases get the apt settings of Debian's own images (no package cache
# left behind, no translations); the slim one also drops what
# debian:bookworm-slim drops (its dpkg path-exclude list) and keeps dpkg from
# installing those files later. Imported again only when the tarball or this
# recipe changed (a new base would invalidate podman's build cache).
BASE_RECIPE=2
SLIM_EXCLUDES=(./usr/share/doc/* ./usr/share/man/* ./usr/share/info/* ./usr/share/groff/*
	./usr/share/lintian/* ./usr/share/linda/* ./usr/share/locale/*)

base_apt_settings() { # base_apt_settings ROOTFS
	local d=$1/etc/apt/apt.conf.d
	mkdir -p "$d"
	cat >"$d/docker-clean" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
	EOF
	echo 'Acquire::Languages "none";' >"$d/docker-no-languages"
	echo 'APT::AutoRemove::SuggestsImportant "false";' >"$d/docker-autoremove-suggests"
}

base_label() { # base_label IMAGE: its portier.base label, if the image exists
	"${PODMAN[@]}" image inspect --format '{{index .Labels "portier.base"}}' "$1" 2>/dev/null
}

step_base_import() {
	needs base-import base-rootfs || return
	local key
	key="$(stat -c '%s-%Y' "$ROOTFS_TAR")-r$BASE_RECIPE"
	if [ "$(base_label "$BASE_IMAGE")" = "$key" ] && [ "$(base_label "$SLIM_IMAGE")" = "$key" ]; then
		result base-import ok "(reused $BASE_IMAGE $(image_size "$BASE_IMAGE"), $SLIM_IMAGE $(image_size "$SLIM_IMAGE"): same tarball)"
		return
	fi
	local root=$WORK/base ex=() p
	mkdir -p "$root"
	if ! tar --numeric-owner -C "$root" -xf "$ROOTFS_TAR" 2>"$LOGS/base-import.log"; then
		result base-import FAIL "(unpacking $ROOTFS_TAR; log $LOGS/base-import.log)"
		return
	fi
	base_apt_settings "$root"
	if ! logged base-import sh -c "tar --numeric-owner -C '$root' -c . | ${PODMAN[*]} import \
			--change 'CMD [\"bash\"]' --change 'LABEL portier.base=$key' - '$BASE_IMAGE'"; then
		result base-import FAIL "(podman import - $BASE_IMAGE; log $LOGS/base-import.log)"
		return
	fi
	for p in "${SLIM_EXCLUDES[@]}"; do ex+=(--exclude="$p"); done
	mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
	cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
		# as in debian:bookworm-slim
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/groff/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/lintian/*
		path-exclude /usr/share/linda/*
		path-exclude /usr/share/locale/*
	EOF
	if logged base-import-slim sh -c "tar --numeric-owner -C '$root' ${ex[*]@Q} -c . | ${PODMAN[*]} import \
			--change 'CMD [\"bash\"]' --change 'LABEL portier.base=$key' - '$SLIM_IMAGE'"; then
		result base-import ok "($BASE_IMAGE $(image_size "$BASE_IMAGE"), $SLIM_IMAGE $(image_size "$SLIM_IMAGE"))"
	else
		result base-import FAIL "(podman import - $SLIM_IMAGE; log $LOGS/base-import-slim.log)"
	fi
	rm -rf --one-file-system "$root"
}

# image_size IMAGE: its size in MB, as podman counts it (uncompressed layers).
image_size() {
	"${PODMAN[@]}" image inspect --format '{{.Size}}' "$1" 2>/dev/null |
		awk '{ printf "%.1f MB", $1 / 1000000 }'
}

# ------------------------------------------------------------- 4. image build
step_image_build() {
	needs image-build base-import || return
	echo "-- podman build --isolation=chroot (apt-get and the compile inside: a few minutes)"
	local t0=$SECONDS
	if logged image-build "${PODMAN[@]}" build --isolation=chroot --format docker \
		--build-arg BASE="$BASE_IMAGE" --build-arg RUNTIME_BASE="$SLIM_IMAGE" \
		-f "$REPO/docker/Dockerfile" -t "$IMAGE" "$REPO"; then
		result image-build ok "($IMAGE in $((SECONDS - t0)) s)"
		# Tag the build stage (all cached) so pruning the layers of earlier
		# builds keeps its apt-get layer for the next run.
		"${PODMAN[@]}" build --isolation=chroot --format docker --target build \
			--build-arg BASE="$BASE_IMAGE" --build-arg RUNTIME_BASE="$SLIM_IMAGE" \
			-f "$REPO/docker/Dockerfile" -t "$IMAGE-stage" "$REPO" >>"$LOGS/image-build.log" 2>&1 &&
			"${PODMAN[@]}" image prune -f >>"$LOGS/image-build.log" 2>&1
	else
		result image-build FAIL "(podman build --isolation=chroot; log $LOGS/image-build.log)"
	fi
}

# ------------------------------------------------------------ 5. image config
step_image_config() {
	needs image-config image-build || return
	local fmt got want problems=()
	fmt='user={{.Config.User}} stop={{.Config.StopSignal}} ports={{range $p, $_ := .Config.ExposedPorts}}{{$p}},{{end}} volumes={{range $v, $_ := .Config.Volumes}}{{$v}},{{end}} health={{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}}'
	got=$("${PODMAN[@]}" image inspect --format "$fmt" "$IMAGE" 2>&1)
	echo "-- $got"
	for want in "user=portier:portier" "stop=SIGTERM" "443/tcp" "80/tcp" "/var/lib/portier," \
		"/run/portier," "portierctl status"; do
		case "$got" in *"$want"*) ;; *) problems+=("$want") ;; esac
	done
	if [ ${#problems[@]} -eq 0 ]; then
		result image-config ok "(non-root user, SIGTERM, 80+443, both volumes, healthcheck portierctl status)"
	else
		result image-config FAIL "(missing from the image config: ${problems[*]})"
	fi
}

# ------------------------------------------------------------- 6. image files
in_image() { chroot "$MNT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin "$@"; }
as_portier() {
	chroot --userspec=10001:10001 "$MNT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin \
		PORTIER_SOCKET=/run/portier/control.sock "$@"
}

step_image_files() {
	needs image-files image-build || return
	if ! CID=$("${PODMAN[@]}" create "$IMAGE" 2>"$LOGS/image-files.log"); then
		cat "$LOGS/image-files.log"
		result image-files FAIL "(podman create $IMAGE; log $LOGS/image-files.log)"
		CID=""
		return
	fi
	if ! MNT=$("${PODMAN[@]}" mount "$CID" 2>>"$LOGS/image-files.log"); then
		cat "$LOGS/image-files.log"
		result image-files FAIL "(podman mount $CID; log $LOGS/image-files.log)"
		MNT=""
		return
	fi
	local problems=() out
	echo "-- image filesystem at $MNT"
	out=$(in_image portier --version 2>&1) || problems+=("portier --version")
	echo "   portier --version: $out"
	out=$(as_portier portier --check -c /etc/portier/portier.json 2>&1) ||
		problems+=("portier --check -c /etc/portier/portier.json")
	echo "   portier --check -c /etc/portier/portier.json: $out"
	out=$(in_image portierctl --help 2>&1) || problems+=("portierctl --help")
	echo "   portierctl --help: $(echo "$out" | head -n 1) ($(echo "$out" | wc -l) lines)"
	out=$(in_image ldd /usr/bin/portier /usr/bin/portierctl 2>&1 | grep 'not found')
	if [ -n "$out" ]; then
		problems+=("libraries not found: $(echo "$out" | awk '{print $1}' | tr '\n' ' ')")
	fi
	echo "   missing libraries: ${out:-none}"
	out=$(getcap "$MNT/usr/bin/portier" 2>&1)
	echo "   getcap /usr/bin/portier: ${out:-no capability}"
	case "$out" in *cap_net_bind_service*ep*|*cap_net_bind_service=ep*) ;;
	*) problems+=("no cap_net_bind_service file capability on /usr/bin/portier") ;; esac
	if [ ${#problems[@]} -eq 0 ]; then
		result image-files ok "(portier --version, --check of the image's config, portierctl --help, all libraries, file capability)"
	else
		result image-files FAIL "(${problems[*]})"
	fi
}

# ------------------------------------------------------------- 7. image smoke
step_image_smoke() {
	needs image-smoke image-files || return
	local log=$WORK/smoke.log
	cp "$REPO/docker/tenants.json" "$MNT/etc/portier/tenants.json"
	local d
	for d in dev proc; do
		mkdir -p "$MNT/$d"
		if mount --rbind "/$d" "$MNT/$d" 2>>"$LOGS/image-smoke.log"; then
			mount --make-rslave "$MNT/$d" 2>/dev/null
			MOUNTED=("$MNT/$d" "${MOUNTED[@]}")
		fi
	done
	# One shell in a fresh network namespace (only lo, so 80 and 443 are free):
	# start the entry point as 10001:10001, wait for the control socket, run the
	# image's HEALTHCHECK command, stop with SIGTERM.
	# (chroot execs env, env the entry point, which execs portier: $pid is portier.)
	export MNT log
	export -f as_portier
	unshare --net bash -c '
		ip link set lo up
		chroot --userspec=10001:10001 "$MNT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin \
			PORTIER_SOCKET=/run/portier/control.sock \
			/usr/local/bin/portier-entrypoint -c /etc/portier/portier.json >"$log" 2>&1 &
		pid=$!
		for _ in $(seq 1 100); do
			[ -S "$MNT/run/portier/control.sock" ] && break
			kill -0 $pid 2>/dev/null || break
			sleep 0.1
		done
		awk "/^(Uid|CapEff):/ { print \"   process| \" \$1, \$2 }" /proc/$pid/status
		as_portier /bin/sh -c "portierctl status > /dev/null || exit 1"; echo "healthcheck=$?"
		as_portier portierctl status | sed "s/^/   status| /"
		ss -Hltn | awk "{print \"   listening| \" \$4}"
		kill -TERM $pid
		for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
		kill -KILL $pid 2>/dev/null
		wait $pid; echo "exit=$?"
	' >"$WORK/smoke.out" 2>&1
	cat "$WORK/smoke.out"
	echo "   portier stderr:"
	sed 's/^/   | /' "$log" | head -n 40
	cp "$log" "$LOGS/image-smoke-portier.log" 2>/dev/null
	local problems=()
	grep -q '^healthcheck=0$' "$WORK/smoke.out" || problems+=("healthcheck command failed")
	grep -q '^exit=0$' "$WORK/smoke.out" || problems+=("no exit 0 on SIGTERM")
	grep -q 'process| Uid: 10001$' "$WORK/smoke.out" || problems+=("portier not running as 10001")
	# effective capabilities: cap_net_bind_service (bit 10) and nothing else
	grep -q 'process| CapEff: 0000000000000400$' "$WORK/smoke.out" ||
		problems+=("portier's capabilities are not exactly cap_net_bind_service")
	grep -q 'listening| .*:80$' "$WORK/smoke.out" || problems+=("port 80 not bound")
	grep -q 'listening| .*:443$' "$WORK/smoke.out" || problems+=("port 443 not bound")
	grep -q 'seeded /var/lib/portier/tenants.json' "$log" || problems+=("tenants not seeded")
	grep -Eq 'status\| +(alpha|beta)' "$WORK/smoke.out" || problems+=("seeded tenants not served")
	if [ ${#problems[@]} -eq 0 ]; then
		result image-smoke ok "(uid 10001 with only cap_net_bind_service bound 80+443, 2 seeded tenants, healthcheck 0, SIGTERM exit 0)"
	else
		result image-smoke FAIL "(${problems[*]}; logs above and in $LOGS/image-smoke-portier.log)"
	fi
}

# -------------------------------------------------------------- 8. image size
step_image_size() {
	needs image-size image-build || return
	if [ -z "$(image_size "$IMAGE")" ]; then
		result image-size FAIL "(podman image inspect $IMAGE gave no size)"
		return
	fi
	result image-size ok "($IMAGE: $(image_size "$IMAGE"); runtime base $SLIM_IMAGE: $(image_size "$SLIM_IMAGE"))"
}

# ----------------------------------------------------------------- 9. compose
step_compose() {
	if ! command -v docker-compose >/dev/null; then
		result compose FAIL "(docker-compose is not installed)"
		return
	fi
	# The example stack refuses to start without its secrets: give it throwaway ones.
	local v envs=()
	for v in $(grep -o '\${[A-Z_]*:?' "$REPO/docker/compose.yml" | sed 's/^\${//; s/:?$//' | sort -u); do
		envs+=("$v=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')")
	done
	if logged compose env "${envs[@]}" docker-compose -f "$REPO/docker/compose.yml" config -q; then
		result compose ok "(docker-compose $(docker-compose version --short 2>/dev/null) config -q, ${#envs[@]} secrets given)"
	else
		result compose FAIL "(docker-compose -f docker/compose.yml config -q; log $LOGS/compose.log)"
	fi
}

# -------------------------------------------------------------------- 10. lint
step_lint() {
	if command -v hadolint >/dev/null; then
		if logged lint hadolint "$REPO/docker/Dockerfile"; then
			result lint ok "(hadolint)"
		else
			result lint FAIL "(hadolint; log $LOGS/lint.log)"
		fi
		return
	fi
	local found
	found=$(apt-cache search hadolint 2>/dev/null; apt-cache search dockerfile lint 2>/dev/null)
	result lint SKIP "(no Dockerfile linter in Debian 12: apt-cache search hadolint / dockerfile lint finds ${found:+only: }$(echo "${found:-nothing}" | cut -d' ' -f1 | tr '\n' ' '); the build itself parsed the Dockerfile)"
}

step_packages
step_base_rootfs
step_base_import
step_image_build
step_image_config
step_image_files
step_image_smoke
step_image_size
step_compose
step_lint

echo
echo "== summary"
printf '%s\n' "${RESULTS[@]}"
failed=0
for n in "${NAMES[@]}"; do
	[ "${STATUS[$n]}" = FAIL ] && failed=1
done
exit $failed
