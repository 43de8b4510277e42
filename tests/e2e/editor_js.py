"""JavaScript the harness (:mod:`tests.e2e.editor`) runs in the editor page: store paths read from the label-studio
1.23.2 editor source (protocol doc Appendix B) and checked in the browser (``tests/e2e/EDITOR_NOTES.md``)."""

# The editor is ready: a selected annotation with objects, every image loaded and every video laid out.
JS_READY = """() => { try {
  const s = window.Htx;
  if (!s || !s.annotationStore || !s.annotationStore.selected || !window.ToolManager) return false;
  const ann = s.annotationStore.selected;
  for (const [name, tag] of s.annotationStore.selected.names) {
    if (tag.type === 'image' && !tag.imageIsLoaded) return false;
    if (tag.type === 'video' && !(tag.ref && tag.ref.current && tag.length > 0)) return false;
  }
  return !!ann.objects && ann.objects.length > 0;
} catch (e) { return false; } }"""

# Regions of the selected annotation, then pending suggestions (see Editor.regions for the keys).
JS_REGIONS = """() => {
  const ann = window.Htx.annotationStore.selected;
  const one = (r, suggestion) => {
    const results = r.results || [];
    const controls = results.map(x => x.from_name && (x.from_name.name || x.from_name));
    let value = null;
    try { value = r.serialize ? (r.serialize() || {}).value || null : null; } catch (e) { value = null; }
    if (value && Array.isArray(value.rle)) { value = {...value, rle_length: value.rle.length}; delete value.rle; }
    return {
      id: r.cleanId || r.id, key: r.id, type: r.type, item_index: r.item_index ?? null,
      object: r.object ? (r.object.name || r.object) : null, controls,
      label: r.labelName ?? null, origin: r.origin ?? null, score: r.score ?? null,
      dynamic: !!r.dynamic, negative: r.negative ?? null, from_suggestion: !!r.fromSuggestion,
      suggestion, accepted: !suggestion && !!r.fromSuggestion, hidden: !!r.hidden, selected: !!r.selected,
      value,
    };
  };
  return [...ann.regionStore.regions.map(r => one(r, false)),
          ...Array.from(ann.suggestions.values()).map(r => one(r, true))];
}"""

# Toggles, selected tools and labels, pending suggestions, annotation id/pk (Editor.state).
JS_STATE = """() => {
  const s = window.Htx; const ann = s.annotationStore.selected;
  const tools = window.ToolManager.allInstances().flatMap(m => m.allTools().filter(t => t.selected)
     .map(t => ({manager: m.name, tool: t.toolName, dynamic: !!t.dynamic})));
  const labels = [];
  for (const [name, tag] of s.annotationStore.selected.names) {
    if (tag.children && tag.type && tag.type.endsWith('labels'))
      for (const l of tag.children) if (l.selected) labels.push([name, l.value]);
  }
  return {autoAnnotation: s.autoAnnotation, autoAccept: s.autoAcceptSuggestions,
          continuousLabeling: s.settings.continuousLabeling, awaitingSuggestions: !!s.awaitingSuggestions,
          annotation: {id: ann.id, pk: ann.pk ?? null}, suggestions: ann.suggestions.size,
          regions: ann.regionStore.regions.length, tools, labels};
}"""
