//! A Rust std program, built for x86_64-unknown-linux-musl (static): collections, float
//! formatting, a caught panic, std::fs on /tmp, processes, and (with `threads`) 4 threads
//! sharing a Mutex and a channel. Its output must match a native run.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{Read, Write};

fn collections() {
    let mut words: BTreeMap<String, usize> = BTreeMap::new();
    let text = "the quick brown fox jumps over the lazy dog the end";
    for w in text.split_whitespace() {
        *words.entry(w.to_string()).or_default() += 1;
    }
    println!("btreemap: {words:?}");
    // HashMap iteration order depends on the random seed: print sorted.
    let h: HashMap<u32, u64> = (0..1000u32)
        .map(|i| (i, u64::from(i) * u64::from(i)))
        .collect();
    let mut keys: Vec<_> = h
        .iter()
        .filter(|(k, _)| *k % 97 == 0)
        .map(|(k, v)| (*k, *v))
        .collect();
    keys.sort();
    println!("hashmap: {} entries, sample {keys:?}", h.len());
    let s: HashSet<i64> = (-50..50).map(|x| x * x % 37).collect();
    println!("hashset: {} distinct", s.len());
    let mut dq: VecDeque<i32> = (1..=10).collect();
    dq.rotate_left(3);
    dq.push_front(0);
    println!("vecdeque: {dq:?}");
    let mut v: Vec<f64> = (0..20).map(|i| ((i * 7919) % 101) as f64 / 7.0).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("sorted floats: {:?}", &v[..5]);
    let mut strs: Vec<String> = (0..8)
        .map(|i| format!("item-{:03}", (i * 37) % 11))
        .collect();
    strs.sort_unstable();
    strs.dedup();
    println!("strings: {}", strs.join(","));
}

fn floats() {
    let xs = [
        0.1f64,
        1.0 / 3.0,
        2.5e-308,
        1e300,
        -0.0,
        f64::EPSILON,
        123456.789,
        f64::MAX,
    ];
    for x in xs {
        println!("{x} {x:e} {x:.3} {x:?} {:.17}", x.sqrt());
    }
    let f = 16777217.0f32;
    println!("f32: {f} {} {}", 0.1f32 + 0.2f32, (2.0f32).powf(0.5));
    println!(
        "math: {} {} {} {}",
        1.5f64.sin(),
        2.0f64.ln(),
        10f64.powi(-3),
        (-8f64).cbrt()
    );
    println!(
        "parse: {:?} {:?}",
        "3.14159".parse::<f64>(),
        "1e400".parse::<f64>()
    );
    println!(
        "ints: {} {} {:x} {:#b}",
        i128::MAX,
        u64::MAX / 3,
        0xdead_beefu32,
        37u8
    );
}

fn panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        println!("panic hook: {msg}");
    }));
    let r = std::panic::catch_unwind(|| {
        let v: Vec<u32> = Vec::new();
        if v.is_empty() {
            panic!("deliberate panic with {} items", v.len());
        }
        v[0]
    });
    println!("caught: {}", r.is_err());
    let r = std::panic::catch_unwind(|| {
        let a = [1, 2, 3];
        let i = a.len() + usize::from(a[0] == 1);
        a[i]
    });
    println!("caught index out of bounds: {}", r.is_err());
    let _ = std::panic::take_hook();
}

fn files() -> std::io::Result<()> {
    let dir = std::env::temp_dir().join(format!("stddemo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let p = dir.join("data.txt");
    {
        let mut f = std::fs::File::create(&p)?;
        for i in 0..1000 {
            writeln!(f, "line {i} {}", i * i)?;
        }
    }
    let mut s = String::new();
    std::fs::File::open(&p)?.read_to_string(&mut s)?;
    let meta = std::fs::metadata(&p)?;
    println!(
        "file: {} bytes, {} lines, len {}",
        s.len(),
        s.lines().count(),
        meta.len()
    );
    std::fs::rename(&p, dir.join("moved.txt"))?;
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    println!("dir: {names:?}");
    std::fs::remove_dir_all(&dir)?;
    println!("removed: {}", !dir.exists());
    println!(
        "missing: {:?}",
        std::fs::read("/nonexistent/file").map_err(|e| e.kind())
    );
    Ok(())
}

fn processes() {
    // The program runs itself as a child: stdout captured through a pipe, exit status.
    let exe = std::env::current_exe().expect("current_exe");
    let out = std::process::Command::new(exe)
        .arg("child")
        .output()
        .expect("spawn the child");
    println!(
        "child: status {:?}, stdout {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn threads() {
    use std::sync::{mpsc, Arc, Mutex};
    let total = Arc::new(Mutex::new(0u64));
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for t in 0..4u64 {
        let total = Arc::clone(&total);
        let tx = tx.clone();
        handles.push(std::thread::spawn(move || {
            let mut local = 0u64;
            for i in 0..10_000u64 {
                local += i * (t + 1);
                if i % 2500 == 0 {
                    *total.lock().unwrap() += 1;
                }
            }
            tx.send((t, local)).unwrap();
            local
        }));
    }
    drop(tx);
    let mut got: Vec<(u64, u64)> = rx.iter().collect();
    got.sort();
    let joined: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!(
        "threads: {got:?}, joined sum {joined}, mutex count {}",
        total.lock().unwrap()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        print!("hello from the child");
        std::process::exit(7);
    }
    collections();
    floats();
    panics();
    files().expect("files");
    processes();
    if args.iter().any(|a| a == "threads") {
        threads();
    }
}
