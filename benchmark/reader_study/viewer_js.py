"""The reading page's script (plain JavaScript, no build step): one image on a canvas with wheel zoom, drag pan,
window/level (sliders or right-drag), an optional mark where the edit is (a click), and the real/fake answer with a
confidence 1-5, saved one by one; the page resumes at the next unanswered image."""
from __future__ import annotations

__all__ = ["SCRIPT"]

SCRIPT = r"""
const token=document.body.dataset.token;const $=s=>document.querySelector(s);
const canvas=$('#view'),ctx=canvas.getContext('2d'),work=document.createElement('canvas');
const wctx=work.getContext('2d',{willReadFrequently:true});
let current=null,shownAt=0,raw=null,img=null,scale=1,ox=0,oy=0,win=255,lev=127.5,mark=null;const chosen={};
function size(){const r=canvas.getBoundingClientRect();canvas.width=Math.round(r.width);
  canvas.height=Math.round(r.height);}
function fit(){if(!img)return;scale=Math.min(canvas.width/img.naturalWidth,canvas.height/img.naturalHeight);
  ox=(canvas.width-img.naturalWidth*scale)/2;oy=(canvas.height-img.naturalHeight*scale)/2;}
function levels(){if(!raw)return;const out=wctx.createImageData(raw.width,raw.height),lo=lev-win/2;
  const lut=new Uint8ClampedArray(256);for(let v=0;v<256;v++)lut[v]=Math.round((v-lo)/win*255);
  for(let k=0;k<raw.data.length;k+=4){const g=lut[raw.data[k]];out.data[k]=out.data[k+1]=out.data[k+2]=g;
    out.data[k+3]=255;}
  wctx.putImageData(out,0,0);$('#window').value=win;$('#level').value=lev;draw();}
function draw(){ctx.setTransform(1,0,0,1,0,0);ctx.fillStyle='#000';ctx.fillRect(0,0,canvas.width,canvas.height);
  if(!img)return;ctx.imageSmoothingEnabled=scale<4;
  ctx.setTransform(scale,0,0,scale,ox,oy);ctx.drawImage(work,0,0);ctx.setTransform(1,0,0,1,0,0);
  if(mark){const k=img.naturalWidth/current.width,[x,y]=[mark.x*k*scale+ox,mark.y*k*scale+oy];
    ctx.strokeStyle='#ffd400';ctx.lineWidth=2;ctx.beginPath();ctx.arc(x,y,12,0,2*Math.PI);ctx.stroke();
    ctx.beginPath();ctx.moveTo(x-18,y);ctx.lineTo(x+18,y);ctx.moveTo(x,y-18);ctx.lineTo(x,y+18);ctx.stroke();}}
function toImage(cx,cy){const r=canvas.getBoundingClientRect(),k=current.width/img.naturalWidth;
  return {x:((cx-r.left)-ox)/scale*k,y:((cy-r.top)-oy)/scale*k};}
window.viewer={toClient(x,y){const r=canvas.getBoundingClientRect(),k=img.naturalWidth/current.width;
  return [r.left+x*k*scale+ox,r.top+y*k*scale+oy];},state:()=>({scale,ox,oy,win,lev,mark})};
canvas.addEventListener('wheel',e=>{e.preventDefault();if(!img)return;const r=canvas.getBoundingClientRect();
  const px=e.clientX-r.left,py=e.clientY-r.top,f=Math.exp(-e.deltaY*0.0015);
  const base=Math.min(canvas.width/img.naturalWidth,canvas.height/img.naturalHeight);
  const next=Math.min(base*16,Math.max(base*0.5,scale*f));ox=px-(px-ox)*next/scale;oy=py-(py-oy)*next/scale;
  scale=next;draw();},{passive:false});
let drag=null;
canvas.addEventListener('contextmenu',e=>e.preventDefault());
canvas.addEventListener('mousedown',e=>{drag={x:e.clientX,y:e.clientY,ox,oy,win,lev,button:e.button,moved:false};});
window.addEventListener('mousemove',e=>{if(!drag)return;const dx=e.clientX-drag.x,dy=e.clientY-drag.y;
  if(Math.abs(dx)+Math.abs(dy)>4)drag.moved=true;if(!drag.moved)return;
  if(drag.button===2){win=Math.min(255,Math.max(1,drag.win+dx));lev=Math.min(255,Math.max(0,drag.lev+dy));levels();}
  else{ox=drag.ox+dx;oy=drag.oy+dy;draw();}});
window.addEventListener('mouseup',e=>{if(!drag)return;const d=drag;drag=null;
  if(d.moved||d.button!==0||!img||e.target!==canvas)return;const p=toImage(e.clientX,e.clientY);
  if(p.x<0||p.y<0||p.x>current.width||p.y>current.height)return;mark=p;$('#clear').disabled=false;
  $('#mark').textContent=`marked at (${p.x.toFixed(1)}, ${p.y.toFixed(1)})`;draw();});
$('#window').addEventListener('input',e=>{win=Number(e.target.value);levels();});
$('#level').addEventListener('input',e=>{lev=Number(e.target.value);levels();});
$('#reset').addEventListener('click',()=>{win=255;lev=127.5;fit();levels();});
$('#clear').addEventListener('click',()=>{mark=null;$('#clear').disabled=true;$('#mark').textContent='no mark';
  draw();});
function show(j){
  if(j.done){$('main').hidden=true;$('#paused').hidden=true;$('#finished').hidden=false;
    $('#progress').textContent=`${j.total} / ${j.total}`;return;}
  current=j;for(const k in chosen)delete chosen[k];mark=null;$('#clear').disabled=true;$('#mark').textContent='no mark';
  document.querySelectorAll('button[data-field]').forEach(b=>b.setAttribute('aria-pressed','false'));
  $('#submit').disabled=true;$('#error').textContent='';
  $('#progress').textContent=`Image ${j.seq+1} of ${j.total}`;
  const next=new Image();next.onload=()=>{img=next;work.width=next.naturalWidth;work.height=next.naturalHeight;
    wctx.drawImage(next,0,0);raw=wctx.getImageData(0,0,work.width,work.height);size();fit();levels();
    shownAt=performance.now();$('main').dataset.ready=j.seq;};
  next.src=`/read/${token}/image/${j.item}.png`;}
function choose(b){const f=b.dataset.field;chosen[f]=Number(b.dataset.value);
  document.querySelectorAll(`button[data-field=${f}]`).forEach(x=>x.setAttribute('aria-pressed',String(x===b)));
  $('#submit').disabled=Object.keys(chosen).length<2;}
async function submit(){
  if(!current||Object.keys(chosen).length<2)return;$('#submit').disabled=true;
  const body={seq:current.seq,item:current.item,...chosen,ms:Math.round(performance.now()-shownAt)};
  if(mark){body.x=Math.round(mark.x*100)/100;body.y=Math.round(mark.y*100)/100;}
  try{const r=await fetch(`/api/${token}/answers`,{method:'POST',headers:{'Content-Type':'application/json'},
    body:JSON.stringify(body)});const j=await r.json();
    if(!r.ok){$('#error').textContent=j.error;$('#submit').disabled=false;return;}show(j.next);}
  catch(e){$('#error').textContent='The server did not answer; your answer was not saved. Try again.';
    $('#submit').disabled=false;}}
document.querySelectorAll('button[data-field]').forEach(b=>b.addEventListener('click',()=>choose(b)));
$('#submit').addEventListener('click',submit);
$('#stop').addEventListener('click',()=>{$('main').hidden=true;$('#paused').hidden=false;});
window.addEventListener('resize',()=>{size();fit();draw();});
fetch(`/api/${token}/next`).then(r=>r.json()).then(show);
"""
