#!/bin/sh
# Stand-in for `next build` (no Node.js in the demo images): writes the
# .next/ output whose static assets grow with what next.config.js asks for.
# Deterministic: the same config always gives the same files and sizes.
#
#   always                                  ~20 MB  JS chunks, CSS, fonts
#   productionBrowserSourceMaps: true       +36 MB  a .js.map next to every chunk
#   images: { unoptimized: true }           +24 MB  original poster/backdrop uploads
#
# usage: build-static.sh NEXT_CONFIG OUT_DIR   (OUT_DIR is the .next directory)
set -eu
config=$1
out=$2

# the config without comments and blanks, e.g. "...productionBrowserSourceMaps:true,images:{unoptimized:true,..."
flags=$(sed -e '/^[[:space:]]*\/\*/d' -e '/^[[:space:]]*\*/d' -e 's://.*$::' "$config" | tr -d ' \t\r\n')
source_maps=false
unoptimized_images=false
case $flags in *productionBrowserSourceMaps:true*) source_maps=true ;; esac
case $flags in *unoptimized:true*) unoptimized_images=true ;; esac

build_id=$(md5sum "$config" | cut -c1-21)
static=$out/static
rm -rf "$out"
mkdir -p "$static/chunks/pages" "$static/css" "$static/media" "$static/$build_id"

# emit FILE MB: a file of MB MiB (a one-line header, then zeros)
emit() {
    { printf '/* medianest %s */\n' "${1##*/}"; dd if=/dev/zero bs=1M count="$2" 2>/dev/null; } >"$1"
}

# chunk NAME MB MAP_MB
for chunk in \
    "framework-5f4b6a1c2e3d4f50 4 9" \
    "main-8c2a1f7e9b0d3c46 3 7" \
    "webpack-1d9e8f7a6b5c4d3e 1 2" \
    "pages/_app-4e3d2c1b0a9f8e7d 3 7" \
    "pages/index-9a8b7c6d5e4f3a2b 2 5" \
    "pages/library-3c4d5e6f7a8b9c0d 2 4" \
    "pages/player-7f6e5d4c3b2a1f0e 1 2"; do
    set -- $chunk
    emit "$static/chunks/$1.js" "$2"
    if [ "$source_maps" = true ]; then emit "$static/chunks/$1.js.map" "$3"; fi
done
emit "$static/css/app-2b7c9d1e0f3a4b5c.css" 2
emit "$static/media/inter-latin-wght-normal.6f1e2d3c.woff2" 1
emit "$static/media/medianest-icons.0a1b2c3d.woff2" 1
if [ "$unoptimized_images" = true ]; then
    for n in 01 02 03 04 05 06 07 08 09 10 11 12; do
        emit "$static/media/poster-$n.original.jpg" 2
    done
fi
printf 'self.__BUILD_MANIFEST={};self.__BUILD_MANIFEST_CB&&self.__BUILD_MANIFEST_CB()\n' >"$static/$build_id/_buildManifest.js"
printf 'self.__SSG_MANIFEST=new Set;self.__SSG_MANIFEST_CB&&self.__SSG_MANIFEST_CB()\n' >"$static/$build_id/_ssgManifest.js"
echo "$build_id" >"$out/BUILD_ID"

kb=$(du -sk "$static" | cut -f1)
printf '{"buildId":"%s","productionBrowserSourceMaps":%s,"imagesUnoptimized":%s,"staticKiB":%s}\n' \
    "$build_id" "$source_maps" "$unoptimized_images" "$kb" >"$out/build-report.json"
echo "next build (stand-in): .next/static is $((kb / 1024)) MiB (source maps: $source_maps, unoptimized images: $unoptimized_images)"
