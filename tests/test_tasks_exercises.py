"""Chapter 4's exercise references agree with the library they mirror."""

import torch

from roots_course.tasks import metrics, numerals, prompting, task_data, task_types
from roots_course.course.exercises import check
from roots_course.core.lora import LoRALinear
from roots_course.tasks.exercises import EXERCISES


def test_references_pass_their_own_checks():
    for exercise in EXERCISES.values():
        assert check(exercise, exercise.reference).passed


def test_references_agree_with_the_library():
    cer = EXERCISES["character_error_rate"].reference
    for args in EXERCISES["character_error_rate"].cases():
        assert cer(*args) == metrics.character_error_rate(*args)
    numeral = EXERCISES["chinese_numeral"].reference
    assert all(numeral(n) == numerals.chinese_numeral(n) for n in range(1, 1000))
    prompt = EXERCISES["few_shot_prompt"].reference
    task = task_data.translation_task(10, 2)
    demos = [task_types.Example("twelve", "十二", "12"), task_types.Example("one hundred five", "一百零五", "105")]
    assert prompt(task.instruction, [(d.x, d.y) for d in demos], "forty") == prompting.few_shot_prompt(task, "forty",
                                                                                                       demos)[0]
    lora = EXERCISES["lora_forward"].reference
    layer = LoRALinear(torch.nn.Linear(8, 5, bias=False), r=2, alpha=6.0)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(3, 8)
    torch.testing.assert_close(lora(x, layer.base.weight, layer.A, layer.B, 6.0), layer(x))


def test_wrong_attempts_fail():
    assert not check(EXERCISES["chinese_numeral"], lambda n: numerals.english_words(n)).passed
    assert not check(EXERCISES["character_error_rate"], lambda p, r: 0.0).passed
