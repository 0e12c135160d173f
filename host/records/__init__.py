"""Records a clinician can use: nights, report, export, annotations, snippets, video."""
