"""The printed report of ``bench_backend.py``: its four parts, then the summary of ratios (see its docstring)."""

from __future__ import annotations

from benchmarks.bench_media import HEIGHT, PROMPT_LS_FRAME, WIDTH


def report(args, threads: int, p: dict, c: dict, r: dict, rows: list[dict]) -> None:
    """Print part 1 (``p``: predict vs session), 2 (``c``: clicks), 3 (``r``: RLE) and 4 (``rows``: peak RSS of the
    short and the long video), then the summary lines."""
    ratio = p["api_s"] / p["bare_s"]
    (render_s, json_s, _), (full_render_s, full_json_s, full_bytes) = p["served"], p["full"]
    ratio_full = (p["api_s"] - render_s - json_s + full_render_s + full_json_s) / \
        (p["bare_s"] - p["served_boxes_s"] + p["full_boxes_s"])
    print(f"\n[1] video box on LS frame {PROMPT_LS_FRAME}, {args.frames} frames: /predict {p['api_s']:.3f} s, "
          f"bare session {p['bare_s']:.3f} s (all: api {', '.join(f'{t:.3f}' for t in p['api_all'])}; "
          f"bare {', '.join(f'{t:.3f}' for t in p['bare_all'])})")
    print(f"    outside open+refer, inside the same calls: /predict {p['api_rest_s'] * 1e3:.1f} ms "
          f"({p['api_rest_s'] / p['api_s']:.1%} of it; fetch, config, prompts, registry, render, JSON, Flask), "
          f"bare {p['bare_rest_s'] * 1e3:.1f} ms (boxes)")
    print(f"    predict/session = {ratio:.2f} (overhead {p['api_s'] - p['bare_s']:+.3f} s); same boxed frames "
          f"both ways: {'yes' if p['same'] else 'NO'} ({p['keyframes']} keyframes in the reply, {p['visible']} bare "
          f"boxes: random tiny weights), reply {p['reply_bytes']} bytes")
    print(f"    as served: render_updates {render_s * 1e3:.1f} ms + json {json_s * 1e3:.2f} ms, bare boxes "
          f"{p['served_boxes_s'] * 1e3:.1f} ms")
    print(f"    visible on all {args.frames} frames: render_updates {full_render_s * 1e3:.1f} ms "
          f"({full_render_s / args.frames * 1e3:.2f} ms/frame) + json {full_json_s * 1e3:.2f} ms ({full_bytes} bytes), "
          f"bare boxes {p['full_boxes_s'] * 1e3:.1f} ms -> predict/session (all visible) = {ratio_full:.2f}")

    print("\n[2] clicks (first: 1 positive keypoint on a fresh task; second: + 1 negative keypoint, same task)")
    for name, row in c.items():
        what = "PNG" if name == "image" else f"{row['frames']} JPEG frames"
        print(f"    {name:6s} ({what}): first {row['first_s']:.3f} s, second {row['second_s']:.3f} s, "
              f"second/first = {row['second_s'] / row['first_s']:.2f}; LLM passes in second call: "
              f"{row['llm_passes']}; masks in reply: {row['masks']}")
        if "full" in row:
            print(f"           visible on all {row['frames']} frames: render_updates {row['full'][0] * 1e3:.1f} ms "
                  f"({row['full'][0] / row['frames'] * 1e3:.2f} ms per {WIDTH}x{HEIGHT} RLE mask), json "
                  f"{row['full'][1] * 1e3:.2f} ms")

    print(f"\n[3] rle encode 1920x1080 ({r['runs']} runs, {r['bytes']} bytes, byte-identical: "
          f"{'yes' if r['identical'] else 'NO'}): ours {r['ours_ms']:.2f} ms, sdk {r['sdk_ms']:.1f} ms, "
          f"ours/sdk speed = {r['sdk_ms'] / r['ours_ms']:.1f}x")

    short, long_ = rows
    print("\n[4] one interactive video box per fresh process (run first), background propagation awaited; MiB")
    if not (short["reset"] and long_["reset"]):
        print("    (/proc/self/clear_refs not writable: peak includes the model-loading peak)")
    print(f"    {'frames':>6} {'load pk':>7} {'loaded':>7} {'peak':>6} {'growth':>6} {'RssAnon':>7} {'RssFile':>7} "
          f"{'feat':>5} {'encoded':>7} {'logits':>6} {'predict s':>9} {'bg jobs':>7} {'bg s':>6} {'tracked':>7}")
    for row in rows:
        print(f"    {row['frames']:>6} {row['load_peak_mib']:7.0f} {row['loaded_mib']:7.0f} {row['peak_mib']:6.0f} "
              f"{row['peak_mib'] - row['loaded_mib']:6.0f} {row['RssAnon']:7.0f} {row['RssFile']:7.0f} "
              f"{row['feature_cache_mib']:5.0f} {row['encoded_frames']:7d} {row['logits_mib']:6.1f} "
              f"{row['predict_s']:9.2f} {row['background_jobs']:7d} {row['background_s']:6.2f} {row['tracked']:7d}")
    growth_short = max(short["peak_mib"] - short["loaded_mib"], 1.0)
    growth_long = long_["peak_mib"] - long_["loaded_mib"]

    image = c["image"]
    print("\nsummary")
    print(f"device = {args.device}, model = {args.model}, torch threads = {threads}")
    print(f"predict/session = {ratio:.2f} ({args.frames}-frame video box; {p['api_s']:.3f} s vs {p['bare_s']:.3f} s)")
    print(f"predict/session (all visible) = {ratio_full:.2f} (rendering re-timed with a box on every frame)")
    print(f"second/first click = {image['second_s'] / image['first_s']:.2f} (image; "
          f"{image['second_s']:.3f} s vs {image['first_s']:.3f} s)")
    if "frames" in c:
        frames = c["frames"]
        print(f"second/first click = {frames['second_s'] / frames['first_s']:.2f} ({frames['frames']} frames; "
              f"{frames['second_s']:.3f} s vs {frames['first_s']:.3f} s)")
    print(f"rle ours/sdk speed = {r['sdk_ms'] / r['ours_ms']:.1f}x")
    print(f"peak RSS long/short = {long_['peak_mib'] / short['peak_mib']:.2f} (x{args.long_factor} frames; "
          f"{long_['peak_mib']:.0f} vs {short['peak_mib']:.0f} MiB)")
    print(f"RSS growth long/short = {growth_long / growth_short:.2f} (x{args.long_factor} frames; "
          f"{growth_long:.0f} vs {growth_short:.0f} MiB above the loaded model)")
