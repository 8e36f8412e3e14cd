"""UI strings in Indonesian (the default) and English."""

from typing import Dict

LANGUAGES = ("id", "en")

STRINGS: Dict[str, Dict[str, str]] = {
    "id": {
        "title": "Simpul — Pusat Komando", "overview": "Ringkasan", "alerts": "Peringatan",
        "tiers": "Paket bandwidth", "logout": "Keluar", "login": "Masuk",
        "token": "Token API", "signed_in_as": "Masuk sebagai",
        "online": "Daring", "offline": "Luring", "unknown": "Tidak diketahui",
        "alerting": "Ada peringatan", "points": "Titik", "district": "Kecamatan",
        "kind": "Jenis", "tier": "Paket", "status": "Status", "last_seen": "Terakhir terlihat",
        "site": "Lokasi", "all": "Semua", "map": "Peta titik", "applied": "diterapkan",
        "requested": "diminta", "never": "belum pernah", "stale": "basi",
        "stale_note": "Data lebih lama dari batas waktu: bukan nilai terkini.",
        "charts": "Grafik", "clients": "Klien terhubung / sekitar", "air": "PM2.5 / PM10",
        "noise": "Kebisingan (dB)", "water": "Tinggi air (cm)", "cpu": "CPU (%)",
        "temp": "Suhu SoC (°C)", "sources": "Status sensor dan kamera",
        "backlog": "Antrean outbox", "config": "Konfigurasi: diinginkan vs dilaporkan",
        "desired": "Diinginkan", "reported": "Dilaporkan", "differs": "berbeda",
        "change_tier": "Ubah paket", "confirm_tier": "Ubah paket titik ini menjadi",
        "applying": "Menunggu titik menerapkan…", "tier_applied": "Paket diterapkan",
        "commands": "Perintah", "send": "Kirim", "result": "Hasil",
        "acknowledge": "Tandai diketahui", "severity": "Tingkat", "opened": "Dibuka",
        "live": "langsung", "upgrade_report": "Laporan peningkatan (p95 pemakaian 7 hari)",
        "rollout": "Peluncuran bertahap", "start_rollout": "Mulai peluncuran",
        "no_data": "Belum ada data", "lang_other": "English", "points_word": "titik",
        "records": "rekaman", "oldest": "tertua", "dropped": "dibuang",
        "not_permitted": "Peran Anda tidak boleh melakukan ini.",
        "agent_version": "Versi agen",
        "figure_unknown": "tidak diketahui", "load_failed": "Gagal memuat",
        "newest_of": "{shown} terbaru dari {count}",
        "clone_note": "Dua kotak tampaknya memakai identitas ini (kartu SD hasil salinan).",
        "gaps_note": "Rentang ini berlubang: tidak ada data selama sekitar",
        "limit_note": "Rekaman melebihi batas grafik: ditampilkan rata-ratanya per menit atau jam.",
    },
    "en": {
        "title": "Simpul — Command Centre", "overview": "Overview", "alerts": "Alerts",
        "tiers": "Bandwidth tiers", "logout": "Sign out", "login": "Sign in",
        "token": "API token", "signed_in_as": "Signed in as",
        "online": "Online", "offline": "Offline", "unknown": "Unknown",
        "alerting": "Alerting", "points": "Points", "district": "District",
        "kind": "Kind", "tier": "Tier", "status": "Status", "last_seen": "Last seen",
        "site": "Site", "all": "All", "map": "Map of points", "applied": "applied",
        "requested": "requested", "never": "never", "stale": "stale",
        "stale_note": "Data older than the timeout: not a current value.",
        "charts": "Charts", "clients": "Clients connected / nearby", "air": "PM2.5 / PM10",
        "noise": "Noise (dB)", "water": "Water level (cm)", "cpu": "CPU (%)",
        "temp": "SoC temperature (°C)", "sources": "Sensor and camera status",
        "backlog": "Outbox backlog", "config": "Config: desired vs reported",
        "desired": "Desired", "reported": "Reported", "differs": "differs",
        "change_tier": "Change tier", "confirm_tier": "Change this point's tier to",
        "applying": "Waiting for the point to apply it…", "tier_applied": "Tier applied",
        "commands": "Commands", "send": "Send", "result": "Result",
        "acknowledge": "Acknowledge", "severity": "Severity", "opened": "Opened",
        "live": "live", "upgrade_report": "Upgrade report (p95 use over 7 days)",
        "rollout": "Staged rollout", "start_rollout": "Start rollout",
        "no_data": "No data yet", "lang_other": "Bahasa Indonesia", "points_word": "points",
        "records": "records", "oldest": "oldest", "dropped": "dropped",
        "not_permitted": "Your role may not do this.",
        "agent_version": "Agent version",
        "figure_unknown": "unknown", "load_failed": "Could not load",
        "newest_of": "the newest {shown} of {count}",
        "clone_note": "Two boxes seem to share this identity (a cloned SD card).",
        "gaps_note": "This range has gaps: no data for about",
        "limit_note": ("More records than a chart holds: showing their per-minute or "
                       "per-hour means."),
    },
}


def strings(lang: str) -> Dict[str, str]:
    return STRINGS.get(lang, STRINGS["id"])
