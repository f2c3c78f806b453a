"""What the student page's tour (page_tour.run_tour) saw, for the browser test's checks and the demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TourResult:
    lecture_status: str = ""
    upload_progress: float = 0.0
    turns: list[dict[str, Any]] = field(default_factory=list)
    play_log: list[dict[str, Any]] = field(default_factory=list)
    not_audio_notice: str = ""
    rejected_status: str = ""
    reconnect_states: list[str] = field(default_factory=list)
    #: performance.now() on the page when talk was pressed over a spoken answer (barge-in), and
    #: when "Speak the answers" was unticked.
    barge_in_at: float = 0.0
    speech_off_at: float = 0.0
    stop_hidden_after: bool = False
    #: performance.now() once the page showed the untick taken (box clear, no Stop), and the
    #: answers' audio that was not paused after the next question was answered (seconds later).
    speech_off_shown_at: float = 0.0
    sounding_after_speech_off: list[dict[str, Any]] | None = None
    #: the talk control: quick clicks (first use), Space held, a question past the length limit
    quick_click_label: str = ""
    quick_clicks_status: str = ""
    quick_clicks_turns: int = -1
    countdown: str = ""
    mic_level_moved: bool = False
    phone_turn: dict[str, Any] = field(default_factory=dict)
    auto_stop_status: str = ""
    #: sizes and accessibility, at desktop and phone sizes
    talk_box: dict[str, dict[str, float]] = field(default_factory=dict)
    ask_bar_on_screen: bool = False
    audit: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    announced: str = ""
    answer_text_count: int = 0
    #: errors in words, replay, coming back
    empty_file_notice: str = ""
    kept_after_reject: dict[str, Any] = field(default_factory=dict)
    replay_played: bool = False
    #: the lecture played from a citation: where it started, and the link it played
    lecture_played: dict[str, Any] = field(default_factory=dict)
    restored_turns: list[dict[str, Any]] = field(default_factory=list)
    lectures_listed: list[str] = field(default_factory=list)
    welcome_back: str = ""
    phone_screenshot: Path | None = None
    #: at phone size: Stop, a bad upload's words, the conversation reopened and its citation played
    phone_stopped: dict[str, Any] = field(default_factory=dict)
    phone_barge_in: dict[str, Any] = field(default_factory=dict)
    phone_not_audio: dict[str, Any] = field(default_factory=dict)
    restored_lecture_played: dict[str, Any] = field(default_factory=dict)
    #: a browser that refuses to play: what the page said, and the turn it happened on
    blocked: dict[str, Any] = field(default_factory=dict)
    recorded_type: str = ""
    screenshot: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)
