"""A generated mini-Danbooru2020 that knows the true scan behind every colored image.

OnePunchGAN (manga/line-art colorization via a CycleGAN scan generator and an attention
U-Net colorizer) trains on tag-filtered Danbooru2020, where no colored illustration comes
with its line-art "scan". This package writes a small stand-in in exactly the published
layout, so every stage runs offline and quality can be *measured*:

    root/metadata/2020000000000000 ...   JSON lines, Danbooru2020 record format, shuffled,
                                         ~duplicate_fraction older snapshots, a few
                                         truncated lines
    root/512px/{id % 1000:04d}/{id}.jpg  rating-s images, fitted into the canvas keeping the
                                         record's aspect ratio, padded with white
    root/groundtruth/{id}.png            the true scan ('L') of every color-domain post, at
                                         the same geometry as its jpg (evaluation only)
    root/oracle/{id}.png                 the benchmark's ceiling for it: each region flat in
                                         its material's mean color at its ink level, the
                                         scan multiplied over (`render_oracle`)
    root/oracle_grey/{id}.png            the same with no color: the floor
    root/materials/{id}.png              each pixel's material code ('L',
                                         `pipeline.data.materials`): per-material ΔE

Drawings come from one vector scene generator (`make_scene`: characters and props made of
blobs, ellipses and smoothed polygons with interior detail strokes) rendered two ways:
`render_scan` (black lines on white; each region inked by its color's lightness, as manga
does: dark colors solid black or dense tone, mid-tones light tone, light colors white) and
`render_color` (flat fills, cel shading away from a light direction, highlights, pastel or
sky backgrounds, tinted lines). Colors follow the priors of `palettes`: Danbooru-like hair
and eye color frequencies, narrow skin tones, props and floors by kind, and a cast of
recurring characters (`cast_size`) who keep their colors from picture to picture. The scan and color domains are
different scenes (unpaired), as in the real data. Distractor posts exercise the filters:
comics, 4koma, photos, partially_monochrome / spot_color, ratings q/e, deleted and banned
posts, non-image file_ext, tiny and extreme-aspect images, and corrupt jpgs.

Everything is deterministic from `SyntheticConfig.seed`: metadata from one generator,
each image from a generator seeded by (seed, post id), so the bytes do not depend on the
number of worker processes.
"""
