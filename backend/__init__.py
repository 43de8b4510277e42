"""Label Studio ML backend serving UniPixel: protocol routes, dispatch, converters and media helpers."""
