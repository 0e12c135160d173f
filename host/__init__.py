"""Host side: receive, store, cluster, alert, report; the spasmwatch CLI."""
